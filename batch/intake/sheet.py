"""The sheet model: rows of text with Excel row numbers, known columns by their aliases.

:func:`build_sheet` turns raw rows (from the CSV or the XLSX reader) into a :class:`Sheet`:
it finds the header, numbers and trims the rows, and matches the columns. Headers are matched
ignoring case, spaces, underscores and dashes, with the aliases popular tools use (see
``FIELD_ALIASES``). Other columns are carried through untouched.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batch.errors import InputError

EXCEL_CELL_LIMIT = 32_767

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"

# Message templates (what, then what to do).
MSG_XLS = "is an old Excel 97-2003 workbook (.xls)."
HINT_XLS = "Open it in Excel and save it as .xlsx (Excel Workbook) or CSV UTF-8."
MSG_ENCRYPTED = "is password-protected (encrypted)."
HINT_ENCRYPTED = (
    "Open it in Excel, remove the password (File > Info > Protect Workbook), save and try again."
)
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
        (
            "addlicenses",
            "addlicense",
            "licensestoadd",
            "licenses",
            "license",
            "sku",
            "skus",
            "skupartnumber",
            "skuid",
            "product",
            "products",
            "licenseplan",
        ),
        ("plan", "productdisplayname", "stringid"),
    ),
    "remove_licenses": (
        ("removelicenses", "removelicense", "licensestoremove", "removeskus", "removesku"),
        (),
    ),
    "disabled_plans": (
        (
            "disabledplans",
            "planstodisable",
            "disabledserviceplans",
            "serviceplanstodisable",
            "disableplans",
        ),
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
    #: XLSX, checked before the reader allocates: the farthest column used (1,000 = ALL)
    max_columns: int = 1_000
    #: XLSX: rows x columns of the used range (the reader allocates every cell of it)
    max_cells: int = 20_000_000
    #: XLSX: text of shared strings summed over every cell that refers to them
    max_expanded_bytes: int = 512 * 1024 * 1024


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


def match_columns(
    headers: Sequence[str], *, path: Path | None = None, sheet: str | None = None
) -> dict[str, int]:
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


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def column_index(letters: str) -> int:
    """The 0-based index of an Excel column name ("A" -> 0, "AA" -> 26)."""
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


def build_sheet(
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
    notes: list[str] = []
    header, header_row = _find_header(rows_iter, notes, path=path, sheet=sheet_name)
    header, header_row, fields, pending = _match_user_columns(
        header, header_row, notes, path=path, sheet=sheet_name
    )
    rows = _data_rows(
        itertools.chain(pending, rows_iter), header, limits, path=path, sheet=sheet_name
    )
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


def _find_header(
    rows: Iterator[tuple[int, list[str]]], notes: list[str], *, path: Path, sheet: str | None
) -> tuple[list[str], int]:
    """Read up to the first non-blank row: the header (trailing empty cells dropped) and its number.

    The rows after it stay in ``rows`` for :func:`_data_rows`.
    """
    for number, cells in rows:
        if not any(cell.strip() for cell in cells):
            continue
        first = cells[0].strip().lower() if cells else ""
        # Entra's bulk templates start with a "version:v1.0" line above the headers.
        if first.startswith("version:") and not any(c.strip() for c in cells[1:]):
            notes.append(f"row {number} ('{cells[0].strip()}') skipped: a template version line")
            continue
        header = [cell.strip() for cell in cells]
        while header and not header[-1]:
            header.pop()
        return header, number
    raise InputError(
        "has no header row: the sheet is empty.",
        path=path,
        sheet=sheet,
        hint="Put the column names (e.g. UserPrincipalName, AddLicenses) in row 1.",
    )


def _match_user_columns(
    header: list[str], header_row: int, notes: list[str], *, path: Path, sheet: str | None
) -> tuple[list[str], int, dict[str, int], list[tuple[int, list[str]]]]:
    """Match the columns, requiring a user column; a lone UPN "header" is read as data.

    Returns the header, its row number, the fields and the rows to read before the rest
    (the header row itself when it turned out to be data).
    """
    fields = match_columns(header, path=path, sheet=sheet)
    if "upn" in fields or "object_id" in fields:
        return header, header_row, fields, []
    non_empty = [h for h in header if h]
    # A headerless list of UPNs (AdminDroid style): the "header" is itself a UPN.
    if len(non_empty) == 1 and "@" in non_empty[0] and " " not in non_empty[0]:
        notes.append("no header row: the single column was read as UserPrincipalName")
        pending = [(header_row, list(header))]
        return ["UserPrincipalName"] + header[1:], header_row - 1, {"upn": 0}, pending
    raise InputError(
        "no UserPrincipalName or ObjectId column.",
        path=path,
        sheet=sheet,
        row=header_row,
        hint=(
            "Name the user column UserPrincipalName (or UPN, User, Email, SignInName), "
            "or ObjectId. Columns found: "
            f"{', '.join(repr(h) for h in non_empty) or 'none'}."
        ),
    )


def _data_rows(
    raw_rows: Iterable[tuple[int, list[str]]],
    header: list[str],
    limits: Limits,
    *,
    path: Path,
    sheet: str | None,
) -> list[SourceRow]:
    """The non-blank rows under the header, fitted to its width, within the file's limits."""
    width = len(header)
    rows: list[SourceRow] = []
    for number, cells in raw_rows:
        joined = "".join(cells)
        if not joined or joined.isspace():
            continue  # blank row: skipped, its number kept by the rows around it
        _check_cell_lengths(cells, joined, header, limits.max_cell_chars, number, path, sheet)
        if len(rows) >= limits.max_rows:
            raise InputError(
                f"has more than {limits.max_rows:,} data rows (the limit for one file).",
                path=path,
                sheet=sheet,
                row=number,
                hint=HINT_SPLIT,
            )
        if len(cells) < width:
            cells = cells + [""] * (width - len(cells))
        extra: tuple[str, ...] = ()
        if len(cells) > width:
            extra = tuple(c for c in cells[width:] if c.strip())
            cells = cells[:width]
        rows.append(SourceRow(number, tuple(cells), extra))
    return rows


def _check_cell_lengths(
    cells: list[str],
    joined: str,
    header: list[str],
    max_chars: int,
    number: int,
    path: Path,
    sheet: str | None,
) -> None:
    """Refuse a row with a cell longer than an Excel cell can hold, naming the cell."""
    # the joined length is a cheap first test: most rows are far below the limit
    if len(joined) <= max_chars or max(map(len, cells)) <= max_chars:
        return
    position = next(i for i, cell in enumerate(cells) if len(cell) > max_chars)
    column = header[position] if position < len(header) else ""
    raise InputError(
        f"a cell holds {len(cells[position]):,} characters, more than the {max_chars:,} a "
        "cell can hold.",
        path=path,
        sheet=sheet,
        row=number,
        column=column or _column_letter(position),
        hint="Shorten or remove that value and try again.",
    )
