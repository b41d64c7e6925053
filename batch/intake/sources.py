"""Sources: read an input sheet (CSV, XLSX, XLSM) into rows of text, with Excel row numbers.

Every cell comes back as the text a person sees: leading zeros, ``NA``, ``None``, ``#N/A``,
GUIDs and long numbers survive; numbers typed in Excel come back as Excel shows them
(``12345``, not ``12345.0``; ``00123`` when the cell is formatted ``00000``); dates as ISO
dates. Formulas are never evaluated: their cached result is read.

Row numbers are the ones the user sees in Excel: the header is row 1 (in a CSV too, where a
record with an embedded newline still counts as one row); blank rows are skipped but keep
their number.

Safety: an XLSX is a zip of XML. Before any parser sees it, ``batch.intake.xlsx``
checks the declared sizes and compression ratios, decompresses every member in bounded
chunks (so a lying header fails its CRC here rather than in the parser), and refuses any
part that carries a DTD (the billion-laughs XML bomb needs one; Office never writes one).
Row counts and cell sizes are bounded by :class:`Limits`.

Headers are matched ignoring case, spaces, underscores and dashes, with the aliases popular
tools use (see ``FIELD_ALIASES``). Other columns are carried through untouched.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import re
from collections.abc import Iterator
from pathlib import Path

from batch.errors import InputError
from batch.intake.sheet import (
    HINT_ENCODING,
    HINT_ENCRYPTED,
    HINT_NOT_WORKBOOK,
    HINT_SPLIT,
    HINT_XLS,
    MSG_ENCRYPTED,
    MSG_NOT_WORKBOOK,
    MSG_XLS,
    OLE_MAGIC,
    ZIP_MAGIC,
    Limits,
    Sheet,
    build_sheet,
)
from batch.intake.xlsx import read_xlsx

__all__ = ["paused_gc", "read_sheet"]


def read_sheet(
    path: Path | str, *, sheet: str | None = None, limits: Limits | None = None
) -> Sheet:
    """Read a CSV, XLSX or XLSM file into a :class:`Sheet`; raise InputError if unreadable."""
    path = Path(path)
    limits = limits or Limits()
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except FileNotFoundError as exc:
        raise InputError(
            "file not found.", path=path, hint="Check the path and try again."
        ) from exc
    except IsADirectoryError as exc:
        raise InputError("is a folder, not a file.", path=path) from exc
    except OSError as exc:
        raise InputError(f"cannot be opened: {exc.strerror}.", path=path) from exc

    with paused_gc():
        return _read(path, head, sheet, limits)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building large acyclic row structures.

    Reading 100,000 rows allocates millions of lists and strings; every allocation burst
    would otherwise trigger full collections that scan them all again (about a third of
    the time). Reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read(path: Path, head: bytes, sheet: str | None, limits: Limits) -> Sheet:
    suffix = path.suffix.lower()
    if head.startswith(OLE_MAGIC):
        _refuse_ole(path)
    if suffix == ".xls":
        raise InputError(
            MSG_NOT_WORKBOOK.format(detail=" (it has an .xls name but is not one)"),
            path=path,
            hint=HINT_NOT_WORKBOOK,
        )
    if suffix in (".xlsx", ".xlsm", ".xltx", ".xltm") or head.startswith(ZIP_MAGIC):
        if not head.startswith(ZIP_MAGIC):
            detail = " (it looks like a text file: if it is a CSV, give it a .csv name)"
            if not _looks_like_text(path):
                detail = " (it is neither a zip-based workbook nor text)"
            raise InputError(
                MSG_NOT_WORKBOOK.format(detail=detail), path=path, hint=HINT_NOT_WORKBOOK
            )
        return read_xlsx(path, sheet, limits)
    if suffix in (".xlsb", ".ods", ".numbers"):
        raise InputError(f"{suffix} files are not supported.", path=path, hint=HINT_NOT_WORKBOOK)
    if sheet is not None:
        raise InputError("is a CSV file, which has no sheets: --sheet does not apply.", path=path)
    return _read_csv(path, limits)


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
    if (
        "EncryptionInfo".encode("utf-16-le") in sample
        or "EncryptedPackage".encode("utf-16-le") in sample
    ):
        raise InputError(MSG_ENCRYPTED, path=path, hint=HINT_ENCRYPTED)
    raise InputError(MSG_XLS, path=path, hint=HINT_XLS)


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
            raise InputError(
                f"is not valid {label} text (byte {exc.start}).", path=path, hint=HINT_ENCODING
            ) from exc
    _refuse_mixed(path, data)
    try:
        # Excel's plain "CSV (Comma delimited)" uses the Windows code page.
        return data.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError as exc:
        raise InputError(
            "is neither UTF-8 nor Windows-1252 text.", path=path, hint=HINT_ENCODING
        ) from exc


def _refuse_mixed(path: Path, data: bytes) -> None:
    """Refuse a file whose lines mix UTF-8 and another encoding (rows pasted from two
    sources): read either way, some names would come out garbled ("RenÃ©e")."""
    utf8, other = [], []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            other.append(number)
        else:
            utf8.append(number)
    if utf8 and other:

        def lines(numbers: list[int]) -> str:
            shown = ", ".join(map(str, numbers[:5]))
            return shown + (f" and {len(numbers) - 5} more" if len(numbers) > 5 else "")

        raise InputError(
            f"mixes UTF-8 text (line {lines(utf8)}) with another encoding, probably "
            f"Windows-1252 (line {lines(other)}): some accented letters would be read wrong.",
            path=path,
            hint=HINT_ENCODING,
        )


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
        raise InputError(
            f"is {size / 2**20:,.0f} MiB, more than the {limits.max_csv_bytes // 2**20} MiB "
            "a CSV may have.",
            path=path,
            hint=HINT_SPLIT,
        )
    data = path.read_bytes()
    if not data.strip():
        raise InputError(
            "is empty.",
            path=path,
            hint="Put the column names (e.g. UserPrincipalName, AddLicenses) in row 1.",
        )
    if (
        b"\x00" in data[:4096]
        and not data.startswith((b"\xff\xfe", b"\xfe\xff"))
        and data[:4096].count(b"\x00") <= len(data[:4096]) // 4
    ):
        raise InputError(
            MSG_NOT_WORKBOOK.format(detail=" nor a text CSV (it holds binary data)"),
            path=path,
            hint=HINT_NOT_WORKBOOK,
        )
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
                    f"a cell holds more than the {limits.max_cell_chars:,} characters a cell can "
                    "hold.",
                    path=path,
                    row=where,
                    hint="Shorten or remove that value and try again.",
                ) from exc
            raise InputError(
                f"is not valid CSV: {exc}.",
                path=path,
                row=where,
                hint="Check the quotes on that row.",
            ) from exc

    names = {",": "comma", ";": "semicolon", "\t": "tab"}
    return build_sheet(
        path,
        "csv",
        None,
        _records(),
        limits,
        encoding=label,
        delimiter=names.get(delimiter, delimiter),
    )
