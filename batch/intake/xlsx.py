"""Sources, XLSX side: open a workbook safely and read one sheet as the text Excel shows.

Part of the sources stage (:mod:`batch.intake.sources` is the entry point). Before any parser sees
the file, :func:`_inspect_archive` checks the declared sizes and compression ratios of every
part, decompresses each in bounded chunks (so a part whose header lies fails its CRC here,
not in the parser), and refuses any part that declares a DTD (the billion-laughs bomb needs
one; Office never writes one). Cells are then read with calamine (fast, cached formula
results, never evaluated) and turned into text: numbers as Excel's General format shows
them, dates as ISO dates, and, from a light pass over the sheet XML, error values (#N/A)
and numbers in simple formats such as ``00000`` or ``0.00`` as displayed.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import python_calamine
from defusedxml import ElementTree as SafeET

from batch.errors import InputError
from batch.intake.sheet import (
    HINT_ENCRYPTED,
    HINT_NOT_WORKBOOK,
    HINT_SPLIT,
    MSG_ENCRYPTED,
    MSG_NOT_WORKBOOK,
    Limits,
    Sheet,
    build_sheet,
    column_index,
)
from batch.intake.xlsxbounds import Bounds, SheetScan, check_bounds, shared_lengths

__all__ = ["read_xlsx"]


@dataclass
class _Archive:
    """What the archive check learnt: sheet parts by name, which hold error cells, and the
    bounds of every worksheet."""

    sheet_parts: dict[str, str] = field(default_factory=dict)
    parts_with_errors: set[str] = field(default_factory=set)
    bounds: dict[str, Bounds] = field(default_factory=dict)
    #: the length of each shared string, by index
    shared_lengths: list[int] = field(default_factory=list)


_DTD = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_ERROR_CELL = b't="e"'


def _inspect_archive(path: Path, limits: Limits) -> _Archive:
    """Check sizes, ratios, CRCs and DTDs of every part before any parser runs."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(
            MSG_NOT_WORKBOOK.format(detail=" (the file is damaged or not a zip package)"),
            path=path,
            hint=HINT_NOT_WORKBOOK,
        ) from exc
    with archive:
        infos = archive.infolist()
        names = {info.filename for info in infos}
        if "xl/workbook.xml" not in names:
            detail = " (it is a zip file, but holds no Excel workbook)"
            if "word/document.xml" in names:
                detail = " (it is a Word document)"
            raise InputError(
                MSG_NOT_WORKBOOK.format(detail=detail), path=path, hint=HINT_NOT_WORKBOOK
            )
        total = sum(info.file_size for info in infos)
        if total > limits.max_unzipped_bytes:
            raise InputError(
                f"would take {total / 2**20:,.0f} MiB once unpacked, more than the "
                f"{limits.max_unzipped_bytes // 2**20:,} MiB allowed (a zip bomb?).",
                path=path,
                hint=HINT_SPLIT,
            )
        for info in infos:
            if info.file_size > 1 << 20 and info.file_size > limits.max_ratio * max(
                info.compress_size, 1
            ):
                raise InputError(
                    f"part {info.filename} is compressed "
                    f"{info.file_size // max(info.compress_size, 1):,} "
                    "to 1, far beyond any real workbook (a zip bomb?); it was not opened.",
                    path=path,
                    hint=HINT_NOT_WORKBOOK,
                )
        result = _Archive()
        # the shared strings first: a worksheet's cells are counted against their lengths
        for info in sorted(infos, key=lambda i: not _is_shared_strings(i.filename)):
            _scan_part(archive, info, path, result)
        result.sheet_parts = _sheet_parts(archive, path)
    return result


def _is_shared_strings(name: str) -> bool:
    return name.lower().endswith("sharedstrings.xml")


def _chunks(stream: Any) -> Iterator[bytes]:
    while chunk := stream.read(1 << 20):
        yield chunk


def _scan_part(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, result: _Archive
) -> None:
    """Decompress one part in chunks: verify it, refuse DTDs anywhere in it, note error
    cells, count a worksheet's bounds and the shared strings' lengths."""
    name = info.filename
    is_xml = name.endswith((".xml", ".rels", ".vml"))
    is_sheet = name.startswith("xl/worksheets/") and name.endswith(".xml")
    scan = SheetScan(result.shared_lengths) if is_sheet else None
    try:
        with archive.open(info) as stream:
            chunks = _checked(_chunks(stream), name, path, is_xml)
            if _is_shared_strings(name):
                result.shared_lengths = shared_lengths(chunks)
                return
            tail = b""
            for chunk in chunks:
                if (
                    is_sheet
                    and name not in result.parts_with_errors
                    and _ERROR_CELL in tail + chunk
                ):
                    result.parts_with_errors.add(name)
                if scan is not None:
                    scan.feed(chunk)
                tail = chunk[-8:]
            if scan is not None:
                scan.feed(b"", last=True)
                result.bounds[name] = scan.bounds
    except InputError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        RuntimeError,
        NotImplementedError,
        ValueError,
    ) as exc:
        # RuntimeError: an encrypted zip member; BadZipFile: a CRC or size that lies.
        raise InputError(
            f"part {info.filename} cannot be unpacked ({exc}).", path=path, hint=HINT_NOT_WORKBOOK
        ) from exc


def _checked(chunks: Iterator[bytes], name: str, path: Path, is_xml: bool) -> Iterator[bytes]:
    """The chunks of a part, refusing a DTD anywhere in it (not only in its first bytes)."""
    tail = b""
    for chunk in chunks:
        if is_xml and _DTD.search(tail + chunk):
            raise InputError(
                f"part {name} declares XML entities (an XML bomb?); "
                "Excel never writes these, so the file was not opened.",
                path=path,
                hint=HINT_NOT_WORKBOOK,
            )
        tail = chunk[-16:]
        yield chunk


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
        raise InputError(
            f"its workbook part cannot be parsed ({type(exc).__name__}).",
            path=path,
            hint=HINT_NOT_WORKBOOK,
        ) from exc
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


def read_xlsx(path: Path, sheet: str | None, limits: Limits) -> Sheet:
    """Read one sheet of an XLSX/XLSM (first visible, or ``sheet``); raise InputError."""
    info = _inspect_archive(path, limits)
    fmt = "xlsm" if path.suffix.lower() == ".xlsm" else "xlsx"
    try:
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
    except python_calamine.PasswordError as exc:
        raise InputError(MSG_ENCRYPTED, path=path, hint=HINT_ENCRYPTED) from exc
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException as exc:  # the reader's own errors, and a Rust panic
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(
            f"cannot be read as a workbook ({detail}).", path=path, hint=HINT_NOT_WORKBOOK
        ) from exc
    with workbook:
        name = _choose_sheet(path, workbook, sheet)
        part = info.sheet_parts.get(name)
        if part:
            with zipfile.ZipFile(path) as archive:
                declared = _dimension_rows(archive, part)
            if declared is not None and declared - 1 > limits.max_rows:
                raise InputError(
                    f"has {declared:,} rows, more than the {limits.max_rows:,} data rows allowed "
                    "in one file.",
                    path=path,
                    sheet=name,
                    hint=HINT_SPLIT,
                )
            if part in info.bounds:
                check_bounds(path, name, info.bounds[part], limits)
        try:
            calamine_sheet = workbook.get_sheet_by_name(name)
            if calamine_sheet.height - 1 > limits.max_rows:
                raise InputError(
                    f"has {calamine_sheet.height:,} rows, more than the {limits.max_rows:,} data "
                    "rows "
                    "allowed in one file.",
                    path=path,
                    sheet=name,
                    hint=HINT_SPLIT,
                )
            values = calamine_sheet.to_python(skip_empty_area=False)
            merged = calamine_sheet.merged_cell_ranges or []
        except InputError:
            raise
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except BaseException as exc:  # the reader's own errors, and a Rust panic
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(
                f"cannot be read ({detail}).", path=path, sheet=name, hint=HINT_NOT_WORKBOOK
            ) from exc

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

    return build_sheet(path, fmt, name, _rows(), limits)


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
            f"has no sheet '{wanted}'.",
            path=path,
            hint=f"Sheets in the file: {', '.join(repr(m.name) for m in metas)}.",
        )
    for meta in worksheets:
        if meta.visible == python_calamine.SheetVisibleEnum.Visible:
            return str(meta.name)
    raise InputError(
        "has no visible worksheet.",
        path=path,
        hint="Unhide the sheet to read, or name it with --sheet.",
    )


def _as_text(value: Any) -> str:
    """A calamine cell value as the text Excel shows in a General-formatted cell."""
    kind = type(value)
    if kind is str:
        return value
    if kind is float:
        return _general_number(value)
    if kind is int:
        return str(value)
    if kind is bool:
        return "TRUE" if value else "FALSE"
    if kind is dt.datetime:
        if value.time() == dt.time():
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds")
    if kind is dt.date:
        return value.isoformat()
    if kind is dt.time:
        return value.isoformat(timespec="seconds")
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


def _fill_merged(
    values: list[list[Any]], merged: Sequence[tuple[tuple[int, int], tuple[int, int]]]
) -> None:
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

_BUILTIN_FORMATS = {
    1: "0",
    2: "0.00",
    3: "#,##0",
    4: "#,##0.00",
    9: "0%",
    10: "0.00%",
    11: "0.00E+00",
}
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


def _shown_values(
    path: Path, part: str, info: _Archive, limits: Limits
) -> dict[int, dict[int, str]]:
    """Row -> {column: text} for error cells and simply formatted numbers in one sheet."""
    with zipfile.ZipFile(path) as archive:
        try:
            formats = _styled_formats(archive)
        except Exception as exc:  # defusedxml and expat raise several unrelated types
            raise InputError(
                f"its styles part cannot be parsed ({type(exc).__name__}).",
                path=path,
                hint=HINT_NOT_WORKBOOK,
            ) from exc
        has_errors = part in info.parts_with_errors
        if not formats and not has_errors:
            return {}
        data = archive.read(part)
    result: dict[int, dict[int, str]] = {}
    columns: dict[bytes, int] = {}

    def _put(letters: bytes, row: bytes, text: str) -> None:
        column = columns.get(letters)
        if column is None:
            column = columns[letters] = column_index(letters.decode())
        result.setdefault(int(row), {})[column] = text

    if formats:
        # Excel, LibreOffice, openpyxl and XlsxWriter all write r, s, t in that order; a
        # number cell with one of the formats is matched directly (no lookahead per cell).
        styles = b"|".join(str(index).encode() for index in formats)
        pattern = re.compile(
            rb'<c r="([A-Z]{1,3})(\d+)" s="(' + styles + rb')"(?: t="n")?>'
            rb"(?:<f[^>]*>[^<]*</f>|<f[^>]*/>)?<v>([^<]*)</v>"
        )
        shown: dict[tuple[bytes, bytes], str | None] = {}
        for letters, row, style, raw in pattern.findall(data):
            key = (raw, style)
            if key not in shown:
                try:
                    shown[key] = _format_number(float(raw), formats[int(style)])
                except ValueError:
                    shown[key] = None
            text = shown[key]
            if text is not None:
                _put(letters, row, text)
    if has_errors:
        for letters, row, raw in _ERROR_VALUE.findall(data):
            _put(letters, row, raw.decode("utf-8", "replace"))
    return result


_ERROR_VALUE = re.compile(
    rb'<c r="([A-Z]{1,3})(\d+)"[^>]*? t="e"[^>]*>(?:<f[^>]*>[^<]*</f>|<f[^>]*/>)?<v>([^<]*)</v>'
)
