"""Sources: read an input sheet (CSV, XLSX, XLSM) into rows of text, with Excel row numbers.

Every cell comes back as the text a person sees: leading zeros, ``NA``, ``None``, ``#N/A``,
GUIDs and long numbers survive; numbers typed in Excel come back as Excel shows them
(``12345``, not ``12345.0``; ``00123`` when the cell is formatted ``00000``); dates as ISO
dates. Formulas are never evaluated: their cached result is read.

Row numbers are the ones the user sees in Excel: the header is row 1 (in a CSV too, where a
record with an embedded newline still counts as one row); blank rows are skipped but keep
their number.

Safety: an XLSX is a zip of XML. Before any parser sees it, :func:`_inspect_archive`
checks the declared sizes and compression ratios, decompresses every member in bounded
chunks (so a lying header fails its CRC here rather than in the parser), and refuses any
part that carries a DTD (the billion-laughs XML bomb needs one; Office never writes one).
Row counts and cell sizes are bounded by :class:`Limits`.

Headers are matched ignoring case, spaces, underscores and dashes, with the aliases popular
tools use (see ``FIELD_ALIASES``). Other columns are carried through untouched.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import math
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import python_calamine
from defusedxml import ElementTree as SafeET

from batch.errors import InputError

__all__ = [
    "FIELD_ALIASES",
    "Limits",
    "Sheet",
    "SourceRow",
    "match_columns",
    "normalise_header",
    "read_sheet",
]

EXCEL_CELL_LIMIT = 32_767

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"

# Message templates (what, then what to do).
MSG_XLS = "is an old Excel 97-2003 workbook (.xls)."
HINT_XLS = "Open it in Excel and save it as .xlsx (Excel Workbook) or CSV UTF-8."
MSG_ENCRYPTED = "is password-protected (encrypted)."
HINT_ENCRYPTED = "Open it in Excel, remove the password (File > Info > Protect Workbook), save and try again."
MSG_NOT_WORKBOOK = "is not an Excel workbook{detail}."
HINT_NOT_WORKBOOK = "Save the sheet from Excel as .xlsx, or as CSV UTF-8 with a .csv name."
HINT_SPLIT = "Split the file into smaller files and run them one after another."
HINT_ENCODING = "Save it from Excel as 'CSV UTF-8 (Comma delimited)' and try again."

#: field -> (strong aliases, weak aliases). A weak alias (e.g. ``Email``) is used only when
#: no strong one is present; when both are, the weak column is carried through untouched.
FIELD_ALIASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "upn": (
        ("userprincipalname", "upn", "username", "signinname", "principalname", "userlogonname"),
        ("user", "email", "emailaddress", "mail", "login", "loginname", "account"),
    ),
    "object_id": (
        ("objectid", "userobjectid", "entraobjectid", "azureadobjectid", "aadobjectid", "userid"),
        (),
    ),
    "add_licenses": (
        ("addlicenses", "addlicense", "licensestoadd", "licenses", "license", "sku", "skus",
         "skupartnumber", "skuid", "product", "products", "licenseplan"),
        ("plan", "productdisplayname", "stringid"),
    ),
    "remove_licenses": (
        ("removelicenses", "removelicense", "licensestoremove", "removeskus", "removesku"),
        (),
    ),
    "disabled_plans": (
        ("disabledplans", "planstodisable", "disabledserviceplans", "serviceplanstodisable",
         "disableplans"),
        (),
    ),
    "usage_location": (
        ("usagelocation",),
        ("country", "countrycode", "location"),
    ),
    "groups": (
        ("groups", "licensegroups", "addgroups", "groupstojoin", "joingroups", "group"),
        (),
    ),
    "remove_groups": (
        ("removegroups", "groupstoleave", "leavegroups", "removegroup"),
        (),
    ),
    "action": (("action", "operation"), ()),
    "effective_date": (("effectivedate", "date", "changedate"), ()),
    "start_date": (("startdate", "hiredate", "joindate", "firstday", "onboardingdate"), ()),
    "leave_date": (
        ("leavedate", "enddate", "terminationdate", "lastday", "leavingdate", "offboardingdate"),
        (),
    ),
}

#: how findings and messages name each field
FIELD_LABELS = {
    "upn": "UserPrincipalName",
    "object_id": "ObjectId",
    "add_licenses": "AddLicenses",
    "remove_licenses": "RemoveLicenses",
    "disabled_plans": "DisabledPlans",
    "usage_location": "UsageLocation",
    "groups": "Groups",
    "remove_groups": "RemoveGroups",
    "action": "Action",
    "effective_date": "EffectiveDate",
    "start_date": "StartDate",
    "leave_date": "LeaveDate",
}

_ALIAS_INDEX: dict[str, tuple[str, int]] = {
    alias: (name, tier)
    for name, tiers in FIELD_ALIASES.items()
    for tier, aliases in enumerate(tiers)
    for alias in aliases
}


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a hostile or runaway input from costing unbounded time or memory."""

    max_rows: int = 250_000  #: data rows in one sheet
    max_cell_chars: int = EXCEL_CELL_LIMIT  #: Excel's own limit for one cell
    max_csv_bytes: int = 256 * 1024 * 1024
    max_unzipped_bytes: int = 512 * 1024 * 1024  #: all parts of an XLSX, decompressed
    #: decompressed/compressed, for parts over 1 MiB (deflate tops out near 1032)
    max_ratio: int = 500


@dataclass(frozen=True)
class SourceRow:
    """One non-blank input row: its Excel row number and its cells as text."""

    row: int
    #: cells aligned with :attr:`Sheet.headers` (padded with "" when the row is short)
    values: tuple[str, ...]
    #: non-empty cells beyond the last header (usually an unquoted delimiter in a CSV)
    extra: tuple[str, ...] = ()


@dataclass
class Sheet:
    """A read sheet: headers, rows, where each known field is, and how it was read."""

    path: Path
    format: str  #: "csv", "xlsx" or "xlsm"
    sheet_name: str | None
    headers: tuple[str, ...]
    header_row: int
    rows: list[SourceRow]
    #: field name (see FIELD_ALIASES) -> column index
    fields: dict[str, int]
    sha256: str
    encoding: str | None = None
    delimiter: str | None = None
    #: header spellings that mapped to known fields, for messages: field -> header text
    notes: list[str] = field(default_factory=list)

    def value(self, row: SourceRow, name: str) -> str:
        """The stripped text of field ``name`` in ``row`` ("" when the column is absent)."""
        index = self.fields.get(name)
        if index is None:
            return ""
        return row.values[index].strip()

    def column_name(self, name: str) -> str:
        """The header text of field ``name`` as written in the file, or its label."""
        index = self.fields.get(name)
        return self.headers[index] if index is not None else FIELD_LABELS.get(name, name)


def normalise_header(text: str) -> str:
    """A header reduced for matching: lower case, no spaces/underscores/dashes/dots.

    Entra's bulk templates write ``User name [userPrincipalName] Required``: the bracketed
    property name wins.
    """
    bracket = re.search(r"\[([^\]]+)\]", text)
    if bracket:
        text = bracket.group(1)
    return re.sub(r"[\s_\-.\u00a0]+", "", text).lower()


def match_columns(headers: Sequence[str], *, path: Path | None = None,
                  sheet: str | None = None) -> dict[str, int]:
    """Map known fields to column indexes; raise InputError on ambiguous duplicates."""
    found: dict[str, dict[int, list[int]]] = {}
    for index, header in enumerate(headers):
        hit = _ALIAS_INDEX.get(normalise_header(header))
        if hit:
            name, tier = hit
            found.setdefault(name, {}).setdefault(tier, []).append(index)
    fields: dict[str, int] = {}
    for name, tiers in found.items():
        best = tiers[min(tiers)]
        if len(best) > 1:
            first, second = best[0], best[1]
            raise InputError(
                f"columns '{headers[first]}' ({_column_letter(first)}) and "
                f"'{headers[second]}' ({_column_letter(second)}) both mean "
                f"{FIELD_LABELS[name]}.",
                path=path,
                sheet=sheet,
                row=1,
                hint="Keep one of them, or rename the other so it is carried through untouched.",
            )
        fields[name] = best[0]
    return fields


def read_sheet(path: Path | str, *, sheet: str | None = None, limits: Limits | None = None) -> Sheet:
    """Read a CSV, XLSX or XLSM file into a :class:`Sheet`; raise InputError if unreadable."""
    path = Path(path)
    limits = limits or Limits()
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except FileNotFoundError as exc:
        raise InputError("file not found.", path=path, hint="Check the path and try again.") from exc
    except IsADirectoryError as exc:
        raise InputError("is a folder, not a file.", path=path) from exc
    except OSError as exc:
        raise InputError(f"cannot be opened: {exc.strerror}.", path=path) from exc

    suffix = path.suffix.lower()
    if head.startswith(OLE_MAGIC):
        _refuse_ole(path)
    if suffix == ".xls":
        raise InputError(MSG_NOT_WORKBOOK.format(detail=" (it has an .xls name but is not one)"),
                         path=path, hint=HINT_NOT_WORKBOOK)
    if suffix in (".xlsx", ".xlsm", ".xltx", ".xltm") or head.startswith(ZIP_MAGIC):
        if not head.startswith(ZIP_MAGIC):
            detail = " (it looks like a text file: if it is a CSV, give it a .csv name)"
            if not _looks_like_text(path):
                detail = " (it is neither a zip-based workbook nor text)"
            raise InputError(MSG_NOT_WORKBOOK.format(detail=detail), path=path, hint=HINT_NOT_WORKBOOK)
        return _read_xlsx(path, sheet, limits)
    if suffix in (".xlsb", ".ods", ".numbers"):
        raise InputError(f"{suffix} files are not supported.", path=path, hint=HINT_NOT_WORKBOOK)
    if sheet is not None:
        raise InputError("is a CSV file, which has no sheets: --sheet does not apply.", path=path)
    return _read_csv(path, limits)


# --------------------------------------------------------------------------- shared steps


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _column_index(letters: str) -> int:
    index = 0
    for char in letters:
        index = index * 26 + (ord(char) - 64)
    return index - 1


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _looks_like_text(path: Path) -> bool:
    with path.open("rb") as handle:
        sample = handle.read(4096)
    if not sample:
        return True
    try:
        sample.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return b"\x00" not in sample


def _refuse_ole(path: Path) -> None:
    """An OLE compound file is either a legacy .xls or an encrypted OOXML package."""
    with path.open("rb") as handle:
        sample = handle.read(1 << 20)
    # Encrypted OOXML keeps its payload in streams named EncryptionInfo/EncryptedPackage;
    # directory entry names are UTF-16LE.
    if "EncryptionInfo".encode("utf-16-le") in sample or "EncryptedPackage".encode("utf-16-le") in sample:
        raise InputError(MSG_ENCRYPTED, path=path, hint=HINT_ENCRYPTED)
    raise InputError(MSG_XLS, path=path, hint=HINT_XLS)


def _build_sheet(
    path: Path,
    fmt: str,
    sheet_name: str | None,
    raw_rows: Iterable[tuple[int, list[str]]],
    limits: Limits,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> Sheet:
    """Find the header, number and trim the rows, match the columns."""
    rows_iter = iter(raw_rows)
    header: list[str] | None = None
    header_row = 0
    notes: list[str] = []
    pending: list[tuple[int, list[str]]] = []
    for number, cells in rows_iter:
        if not any(cell.strip() for cell in cells):
            continue
        first = cells[0].strip().lower() if cells else ""
        # Entra's bulk templates start with a "version:v1.0" line above the headers.
        if header is None and first.startswith("version:") and not any(c.strip() for c in cells[1:]):
            notes.append(f"row {number} ('{cells[0].strip()}') skipped: a template version line")
            continue
        header = [cell.strip() for cell in cells]
        header_row = number
        break
    if header is None:
        raise InputError("has no header row: the sheet is empty.", path=path, sheet=sheet_name,
                         hint="Put the column names (e.g. UserPrincipalName, AddLicenses) in row 1.")
    while header and not header[-1]:
        header.pop()

    fields = match_columns(header, path=path, sheet=sheet_name)
    if "upn" not in fields and "object_id" not in fields:
        non_empty = [h for h in header if h]
        # A headerless list of UPNs (AdminDroid style): the "header" is itself a UPN.
        if len(non_empty) == 1 and "@" in non_empty[0] and " " not in non_empty[0]:
            pending.append((header_row, list(header)))
            header = ["UserPrincipalName"] + header[1:]
            fields = {"upn": 0}
            notes.append("no header row: the single column was read as UserPrincipalName")
            header_row = header_row - 1
        else:
            raise InputError(
                "no UserPrincipalName or ObjectId column.",
                path=path,
                sheet=sheet_name,
                row=header_row,
                hint=("Name the user column UserPrincipalName (or UPN, User, Email, SignInName), "
                      f"or ObjectId. Columns found: {', '.join(repr(h) for h in non_empty) or 'none'}."),
            )

    width = len(header)
    rows: list[SourceRow] = []
    max_chars = limits.max_cell_chars

    def _chain() -> Iterator[tuple[int, list[str]]]:
        yield from pending
        yield from rows_iter

    for number, cells in _chain():
        joined = "".join(cells)
        if not joined or joined.isspace():
            continue  # blank row: skipped, its number kept by the rows around it
        if len(joined) > max_chars and max(map(len, cells)) > max_chars:
            position = next(i for i, cell in enumerate(cells) if len(cell) > max_chars)
            column = header[position] if position < width else ""
            raise InputError(
                f"a cell holds {len(cells[position]):,} characters, more than the {max_chars:,} a cell can hold.",
                path=path, sheet=sheet_name, row=number, column=column or _column_letter(position),
                hint="Shorten or remove that value and try again.",
            )
        if len(rows) >= limits.max_rows:
            raise InputError(
                f"has more than {limits.max_rows:,} data rows (the limit for one file).",
                path=path, sheet=sheet_name, row=number, hint=HINT_SPLIT,
            )
        if len(cells) < width:
            cells = cells + [""] * (width - len(cells))
        extra: tuple[str, ...] = ()
        if len(cells) > width:
            extra = tuple(c for c in cells[width:] if c.strip())
            cells = cells[:width]
        rows.append(SourceRow(number, tuple(cells), extra))

    return Sheet(
        path=path,
        format=fmt,
        sheet_name=sheet_name,
        headers=tuple(header),
        header_row=header_row,
        rows=rows,
        fields=fields,
        sha256=_sha256(path),
        encoding=encoding,
        delimiter=delimiter,
        notes=notes,
    )


# --------------------------------------------------------------------------- CSV


def _detect_encoding(data: bytes) -> tuple[str, str]:
    """Return (codec, label) for CSV bytes: BOM first, then UTF-8, then Windows-1252."""
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig", "UTF-8 with BOM"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16", "UTF-16"
    sample = data[:4096]
    if len(sample) >= 4 and sample.count(b"\x00") > len(sample) // 4:
        # UTF-16 without a BOM: ASCII text has its NULs on one side of each pair.
        odd = sample[1::2].count(b"\x00")
        even = sample[0::2].count(b"\x00")
        return ("utf-16-le", "UTF-16LE") if odd > even else ("utf-16-be", "UTF-16BE")
    return "utf-8", "UTF-8"


def _decode(path: Path, data: bytes) -> tuple[str, str]:
    codec, label = _detect_encoding(data)
    try:
        return data.decode(codec), label
    except UnicodeDecodeError as exc:
        if codec != "utf-8":
            raise InputError(f"is not valid {label} text (byte {exc.start}).", path=path,
                             hint=HINT_ENCODING) from exc
    try:
        # Excel's plain "CSV (Comma delimited)" uses the Windows code page.
        return data.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError as exc:
        raise InputError("is neither UTF-8 nor Windows-1252 text.", path=path,
                         hint=HINT_ENCODING) from exc


def _sniff_delimiter(line: str) -> str:
    """Pick the delimiter that splits the header line most (outside quotes)."""
    counts = {",": 0, ";": 0, "\t": 0}
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def _read_csv(path: Path, limits: Limits) -> Sheet:
    size = path.stat().st_size
    if size > limits.max_csv_bytes:
        raise InputError(f"is {size / 2**20:,.0f} MiB, more than the {limits.max_csv_bytes // 2**20} MiB "
                         "a CSV may have.", path=path, hint=HINT_SPLIT)
    data = path.read_bytes()
    if not data.strip():
        raise InputError("is empty.", path=path,
                         hint="Put the column names (e.g. UserPrincipalName, AddLicenses) in row 1.")
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")) \
            and data[:4096].count(b"\x00") <= len(data[:4096]) // 4:
        raise InputError(MSG_NOT_WORKBOOK.format(detail=" nor a text CSV (it holds binary data)"),
                         path=path, hint=HINT_NOT_WORKBOOK)
    text, label = _decode(path, data)
    del data
    if text.startswith("\ufeff"):
        text = text[1:]
    first_line, _, rest = text.partition("\n")
    delimiter: str | None = None
    # Excel honours a first line "sep=;" and does not show it as a row.
    match = re.fullmatch(r"sep=(.)\r?", first_line)
    if match:
        delimiter = match.group(1)
        text = rest
        first_line = text.partition("\n")[0]
    if delimiter is None:
        delimiter = _sniff_delimiter(first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)

    def _records() -> Iterator[tuple[int, list[str]]]:
        number = 0
        try:
            for number, cells in enumerate(reader, start=1):  # noqa: B007 - used in except
                yield number, cells
        except csv.Error as exc:
            where = number + 1
            if "field larger than field limit" in str(exc):
                raise InputError(
                    f"a cell holds more than the {limits.max_cell_chars:,} characters a cell can hold.",
                    path=path, row=where, hint="Shorten or remove that value and try again.",
                ) from exc
            raise InputError(f"is not valid CSV: {exc}.", path=path, row=where,
                             hint="Check the quotes on that row.") from exc

    names = {",": "comma", ";": "semicolon", "\t": "tab"}
    return _build_sheet(path, "csv", None, _records(), limits, encoding=label,
                        delimiter=names.get(delimiter, delimiter))


# --------------------------------------------------------------------------- XLSX


@dataclass
class _Archive:
    """What the archive check learnt: sheet parts by name, and which hold error cells."""

    sheet_parts: dict[str, str] = field(default_factory=dict)
    parts_with_errors: set[str] = field(default_factory=set)


_DTD = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_ERROR_CELL = b't="e"'


def _inspect_archive(path: Path, limits: Limits) -> _Archive:
    """Check sizes, ratios, CRCs and DTDs of every part before any parser runs."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(MSG_NOT_WORKBOOK.format(detail=" (the file is damaged or not a zip package)"),
                         path=path, hint=HINT_NOT_WORKBOOK) from exc
    with archive:
        infos = archive.infolist()
        names = {info.filename for info in infos}
        if "xl/workbook.xml" not in names:
            detail = " (it is a zip file, but holds no Excel workbook)"
            if "word/document.xml" in names:
                detail = " (it is a Word document)"
            raise InputError(MSG_NOT_WORKBOOK.format(detail=detail), path=path, hint=HINT_NOT_WORKBOOK)
        total = sum(info.file_size for info in infos)
        if total > limits.max_unzipped_bytes:
            raise InputError(
                f"would take {total / 2**20:,.0f} MiB once unpacked, more than the "
                f"{limits.max_unzipped_bytes // 2**20:,} MiB allowed (a zip bomb?).",
                path=path, hint=HINT_SPLIT,
            )
        for info in infos:
            if info.file_size > 1 << 20 and info.file_size > limits.max_ratio * max(info.compress_size, 1):
                raise InputError(
                    f"part {info.filename} is compressed {info.file_size // max(info.compress_size, 1):,} "
                    "to 1, far beyond any real workbook (a zip bomb?); it was not opened.",
                    path=path, hint=HINT_NOT_WORKBOOK,
                )
        result = _Archive()
        for info in infos:
            _scan_part(archive, info, path, result)
        result.sheet_parts = _sheet_parts(archive, path)
    return result


def _scan_part(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, result: _Archive) -> None:
    """Decompress one part in chunks: verify it, refuse DTDs, note error cells."""
    is_xml = info.filename.endswith((".xml", ".rels", ".vml"))
    is_sheet = info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml")
    try:
        with archive.open(info) as stream:
            head = b""
            tail = b""
            while True:
                chunk = stream.read(1 << 20)
                if not chunk:
                    break
                if is_xml and len(head) < 4096:
                    head += chunk[:4096]
                    if _DTD.search(head):
                        raise InputError(
                            f"part {info.filename} declares XML entities (an XML bomb?); "
                            "Excel never writes these, so the file was not opened.",
                            path=path, hint=HINT_NOT_WORKBOOK,
                        )
                if is_sheet and info.filename not in result.parts_with_errors \
                        and _ERROR_CELL in tail + chunk:
                    result.parts_with_errors.add(info.filename)
                tail = chunk[-8:]
    except InputError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError,
            NotImplementedError, ValueError) as exc:
        # RuntimeError: an encrypted zip member; BadZipFile: a CRC or size that lies.
        raise InputError(
            f"part {info.filename} cannot be unpacked ({exc}).", path=path, hint=HINT_NOT_WORKBOOK
        ) from exc


_NS_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_NS_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_NS_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"


def _parse_xml(archive: zipfile.ZipFile, name: str) -> Any:
    return SafeET.fromstring(archive.read(name), forbid_dtd=True)


def _sheet_parts(archive: zipfile.ZipFile, path: Path) -> dict[str, str]:
    """Sheet name -> worksheet part path, from workbook.xml and its relationships."""
    try:
        workbook = _parse_xml(archive, "xl/workbook.xml")
        rels = _parse_xml(archive, "xl/_rels/workbook.xml.rels")
    except KeyError:
        return {}
    except Exception as exc:  # defusedxml and expat raise several unrelated types
        raise InputError(f"its workbook part cannot be parsed ({type(exc).__name__}).",
                         path=path, hint=HINT_NOT_WORKBOOK) from exc
    targets = {}
    for rel in rels.iter(f"{_NS_PKG_REL}Relationship"):
        target = rel.get("Target", "")
        target = target.lstrip("/") if target.startswith("/") else "xl/" + target
        targets[rel.get("Id")] = target
    parts = {}
    for element in workbook.iter(f"{_NS_MAIN}sheet"):
        rid = element.get(f"{_NS_REL}id")
        if rid in targets:
            parts[element.get("name", "")] = targets[rid]
    return parts


def _dimension_rows(archive: zipfile.ZipFile, part: str) -> int | None:
    """The last row of a worksheet's declared <dimension>, read from its first bytes."""
    try:
        with archive.open(part) as stream:
            head = stream.read(4096)
    except KeyError:
        return None
    match = re.search(rb'<dimension ref="[A-Z]+\d+(?::[A-Z]+(\d+))?"', head)
    if match and match.group(1):
        return int(match.group(1))
    return None


def _read_xlsx(path: Path, sheet: str | None, limits: Limits) -> Sheet:
    info = _inspect_archive(path, limits)
    fmt = "xlsm" if path.suffix.lower() == ".xlsm" else "xlsx"
    try:
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
    except python_calamine.PasswordError as exc:
        raise InputError(MSG_ENCRYPTED, path=path, hint=HINT_ENCRYPTED) from exc
    except (python_calamine.CalamineError, OSError, ValueError) as exc:
        raise InputError(f"cannot be read as a workbook ({exc}).", path=path, hint=HINT_NOT_WORKBOOK) from exc
    with workbook:
        name = _choose_sheet(path, workbook, sheet)
        part = info.sheet_parts.get(name)
        if part:
            with zipfile.ZipFile(path) as archive:
                declared = _dimension_rows(archive, part)
            if declared is not None and declared - 1 > limits.max_rows:
                raise InputError(
                    f"has {declared:,} rows, more than the {limits.max_rows:,} data rows allowed in one file.",
                    path=path, sheet=name, hint=HINT_SPLIT,
                )
        try:
            calamine_sheet = workbook.get_sheet_by_name(name)
            if calamine_sheet.height - 1 > limits.max_rows:
                raise InputError(
                    f"has {calamine_sheet.height:,} rows, more than the {limits.max_rows:,} data rows "
                    "allowed in one file.",
                    path=path, sheet=name, hint=HINT_SPLIT,
                )
            values = calamine_sheet.to_python(skip_empty_area=False)
            merged = calamine_sheet.merged_cell_ranges or []
        except python_calamine.CalamineError as exc:
            raise InputError(f"cannot be read ({exc}).", path=path, sheet=name,
                             hint=HINT_NOT_WORKBOOK) from exc

    shown = _shown_values(path, part, info, limits) if part else {}
    _fill_merged(values, merged)

    def _rows() -> Iterator[tuple[int, list[str]]]:
        for index, cells in enumerate(values):
            number = index + 1
            texts = [cell if type(cell) is str else _as_text(cell) for cell in cells]
            overrides = shown.get(number)
            if overrides:
                for col, text in overrides.items():
                    if col < len(texts):
                        texts[col] = text
            yield number, texts

    return _build_sheet(path, fmt, name, _rows(), limits)


def _choose_sheet(path: Path, workbook: Any, wanted: str | None) -> str:
    metas = workbook.sheets_metadata
    worksheets = [m for m in metas if m.typ == python_calamine.SheetTypeEnum.WorkSheet]
    if wanted is not None:
        for meta in metas:
            if meta.name == wanted:
                return str(meta.name)
        for meta in metas:
            if meta.name.strip().lower() == wanted.strip().lower():
                return str(meta.name)
        raise InputError(
            f"has no sheet '{wanted}'.", path=path,
            hint=f"Sheets in the file: {', '.join(repr(m.name) for m in metas)}.",
        )
    for meta in worksheets:
        if meta.visible == python_calamine.SheetVisibleEnum.Visible:
            return str(meta.name)
    raise InputError("has no visible worksheet.", path=path,
                     hint="Unhide the sheet to read, or name it with --sheet.")


def _as_text(value: Any) -> str:
    """A calamine cell value as the text Excel shows in a General-formatted cell."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is float:
        return _general_number(value)
    if kind is int:
        return str(value)
    if kind is bool:
        return "TRUE" if value else "FALSE"
    if kind is dt.datetime:
        if value.time() == dt.time():
            return value.date().isoformat()  # type: ignore[no-any-return]
        return value.isoformat(sep=" ", timespec="seconds")  # type: ignore[no-any-return]
    if kind is dt.date:
        return value.isoformat()  # type: ignore[no-any-return]
    if kind is dt.time:
        return value.isoformat(timespec="seconds")  # type: ignore[no-any-return]
    if kind is dt.timedelta:
        seconds = int(value.total_seconds())
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return "" if value is None else str(value)


def _general_number(value: float) -> str:
    """Excel keeps 15 significant digits; show integers without '.0'."""
    if math.isnan(value) or math.isinf(value):
        return "#NUM!"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = format(value, ".15g")
    return text.replace("e+", "E+").replace("e-", "E-")


def _fill_merged(values: list[list[Any]], merged: Sequence[tuple[tuple[int, int], tuple[int, int]]]) -> None:
    """Give every cell of a merged area the value shown in it (its top-left cell's)."""
    for (top, left), (bottom, right) in merged:
        if top >= len(values) or left >= len(values[top]):
            continue
        shown = values[top][left]
        for row in range(top, min(bottom, len(values) - 1) + 1):
            cells = values[row]
            for col in range(left, min(right, len(cells) - 1) + 1):
                if (row, col) != (top, left):
                    cells[col] = shown


# ---- cells whose shown text calamine does not give: error values and formatted numbers

_BUILTIN_FORMATS = {1: "0", 2: "0.00", 3: "#,##0", 4: "#,##0.00", 9: "0%", 10: "0.00%", 11: "0.00E+00"}
_SIMPLE_FORMAT = re.compile(r"^(#,##)?(0+)(?:\.(0+))?(%)?$")


def _format_number(value: float, code: str) -> str | None:
    """Apply a simple Excel number format; None for formats we do not imitate."""
    if code == "0.00E+00":
        mantissa, exponent = f"{value:.2E}".split("E")
        return f"{mantissa}E{exponent[0]}{exponent[1:].zfill(2)}"
    match = _SIMPLE_FORMAT.match(code.split(";")[0].replace('"', ""))
    if not match:
        return None
    grouping, zeros, decimals, percent = match.groups()
    if percent:
        value *= 100
    places = len(decimals or "")
    text = f"{abs(value):,.{places}f}" if grouping else f"{abs(value):.{places}f}"
    integer, _, fraction = text.partition(".")
    integer = integer.zfill(len(zeros)) if not grouping else integer
    text = integer + (f".{fraction}" if fraction else "")
    sign = "-" if value < 0 and text.strip("0.,") else ""
    return sign + text + ("%" if percent else "")


def _styled_formats(archive: zipfile.ZipFile) -> dict[int, str]:
    """Cell style index -> number format code, for the formats :func:`_format_number` imitates."""
    try:
        styles = _parse_xml(archive, "xl/styles.xml")
    except KeyError:
        return {}
    custom = {}
    for element in styles.iter(f"{_NS_MAIN}numFmt"):
        custom[int(element.get("numFmtId", "0"))] = element.get("formatCode", "")
    result = {}
    xfs = styles.find(f"{_NS_MAIN}cellXfs")
    if xfs is None:
        return {}
    for index, xf in enumerate(xfs.findall(f"{_NS_MAIN}xf")):
        fmt_id = int(xf.get("numFmtId", "0"))
        code = custom.get(fmt_id) or _BUILTIN_FORMATS.get(fmt_id)
        if code and _format_number(1.0, code) is not None:
            result[index] = code
    return result


def _shown_values(path: Path, part: str, info: _Archive, limits: Limits) -> dict[int, dict[int, str]]:
    """Row -> {column: text} for error cells and simply formatted numbers in one sheet."""
    with zipfile.ZipFile(path) as archive:
        try:
            formats = _styled_formats(archive)
        except Exception as exc:  # defusedxml and expat raise several unrelated types
            raise InputError(f"its styles part cannot be parsed ({type(exc).__name__}).",
                             path=path, hint=HINT_NOT_WORKBOOK) from exc
        has_errors = part in info.parts_with_errors
        if not formats and not has_errors:
            return {}
        data = archive.read(part)
    wanted = [b't="e"'] + [f's="{index}"'.encode() for index in formats]
    # Only cells carrying an error type or one of the styles are looked at (a lookahead),
    # so a plain sheet costs one regex scan.
    pattern = re.compile(
        rb'<c r="([A-Z]{1,3})(\d+)"(?=[^>]*\b(?:' + b"|".join(re.escape(w) for w in wanted) + rb'))'
        rb'([^>]*?)>(?:<f[^>]*>[^<]*</f>|<f[^>]*/>)?<v>([^<]*)</v>'
    )
    result: dict[int, dict[int, str]] = {}
    shown: dict[tuple[bytes, bytes], str | None] = {}
    columns: dict[bytes, int] = {}
    for letters, row, attrs, raw in pattern.findall(data):
        kind = _T_ATTR.search(attrs)
        kind_text = kind.group(1) if kind else b"n"
        if kind_text == b"e":
            text: str | None = raw.decode("utf-8", "replace")
        elif kind_text == b"n":
            style = _S_ATTR.search(attrs)
            if not style:
                continue
            key = (raw, style.group(1))
            if key not in shown:
                code = formats.get(int(style.group(1)))
                try:
                    shown[key] = _format_number(float(raw), code) if code else None
                except ValueError:
                    shown[key] = None
            text = shown[key]
        else:
            continue
        if text is not None:
            column = columns.get(letters)
            if column is None:
                column = columns[letters] = _column_index(letters.decode())
            result.setdefault(int(row), {})[column] = text
    return result


_T_ATTR = re.compile(rb'\bt="(\w+)"')
_S_ATTR = re.compile(rb'\bs="(\d+)"')
