"""Sources, XLSX side: what a worksheet would make the reader allocate, counted first.

calamine allocates the whole used range of a sheet (rows x columns, each cell a value) and
copies a shared string into every cell that refers to it. A file of a few kilobytes can
therefore ask for hundreds of gigabytes: one cell at XFD1048576, a stray cell in column XFD
below 20,000 rows, one long shared string referenced 200,000 times. :class:`SheetScan`
counts the farthest row and column, the cells and the shared text copied, streaming the
sheet's XML in chunks while the archive check decompresses it; :func:`check_bounds`
refuses a sheet beyond the :class:`~batch.intake.sheet.Limits` before calamine reads it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from batch.errors import InputError
from batch.intake.sheet import HINT_SPLIT, Limits, column_index

__all__ = ["Bounds", "SheetScan", "check_bounds", "column_letters", "shared_lengths"]


@dataclass
class Bounds:
    """What one worksheet makes the reader allocate, counted from its XML before it runs."""

    rows: int = 0  #: the farthest row with a cell or a row element
    columns: int = 0  #: the farthest column with a cell
    cells: int = 0
    #: shared-string text copied into cells (one copy per referring cell)
    expanded: int = 0


_TAG = re.compile(rb"<(row|c)\b([^>]*)>")
_REF = re.compile(rb'\br="([A-Z]{0,3})(\d*)"')
_SHARED_REF = re.compile(rb'\bt="s"[^>]*>(?:<f\b[^>]*?(?:/>|>[^<]*</f>))?<v>(\d+)</v>')
_SHARED_CELL = re.compile(rb'\bt="s"[^>]*>(.*?)</c>', re.DOTALL)
_VALUE = re.compile(rb"<v\b[^>]*>\s*(\d+)\s*</v>")
_FAST_CELL = re.compile(rb'<c r="([A-Z]{1,3})(\d{1,7})"')
_SHARED_ITEM = re.compile(rb"<si>(.*?)</si>", re.DOTALL)
#: how much of a part is carried to the next chunk at most while looking for a whole element
_MAX_CARRY = 8 << 20


class SheetScan:
    """Counts a worksheet's used range, cells and shared-string copies, chunk by chunk."""

    def __init__(self, shared_lengths: Sequence[int]) -> None:
        self.bounds = Bounds()
        self._shared = shared_lengths
        self._carry = b""
        self._row = 0
        self._column = 0
        self._letters: dict[bytes, int] = {}

    def feed(self, chunk: bytes, *, last: bool = False) -> None:
        data = self._carry + chunk
        cut = len(data) if last else max(data.rfind(b"</c>") + 4, data.rfind(b"</row>") + 6)
        if cut <= 0 or (not last and len(data) - cut > _MAX_CARRY):
            cut = len(data) if last else max(data.rfind(b"<"), 0)
        self._count(data[:cut])
        self._carry = data[cut:]

    def _count(self, data: bytes) -> None:
        """Count one stretch of whole elements: the common layout at C speed, else tag by tag.

        Excel and the usual writers put ``r`` first in every ``<c>`` and ``<row>``; when the
        plain counts of cells and rows match the references found, those give the bounds.
        Anything else (no ``r``, attributes in another order) is read tag by tag.
        """
        cells = data.count(b"<c ") + data.count(b"<c>") + data.count(b"<c/>")
        rows = data.count(b"<row ") + data.count(b"<row>")
        refs = _FAST_CELL.findall(data)
        if len(refs) != cells or data.count(b'<row r="') != rows:
            self._count_tags(data)
        elif refs:
            # the cells' own references give the used range (a row without cells adds none)
            bounds = self.bounds
            letters, numbers = zip(*refs, strict=True)
            for found in set(letters):
                column = self._letters.get(found)
                if column is None:
                    column = self._letters[found] = column_index(found.decode()) + 1
                bounds.columns = max(bounds.columns, column)
            bounds.rows = max(bounds.rows, *map(int, numbers))
            bounds.cells += cells
            self._row = int(numbers[-1])
            self._column = self._letters[letters[-1]]
        self._count_shared(data)

    def _count_shared(self, data: bytes) -> None:
        shared = self._shared
        marked = data.count(b't="s"')
        if not marked:
            return
        found = _SHARED_REF.findall(data)
        if len(found) != marked:  # another layout: each cell's value read apart
            found = [m.group(1) for m in map(_VALUE.search, _SHARED_CELL.findall(data)) if m]
        indexes = list(map(int, found))
        if indexes and max(indexes) < len(shared):
            self.bounds.expanded += sum(map(shared.__getitem__, indexes))
        else:
            self.bounds.expanded += sum(shared[i] for i in indexes if i < len(shared))

    def _count_tags(self, data: bytes) -> None:
        bounds = self.bounds
        for name, attributes in _TAG.findall(data):
            ref = _REF.search(attributes)
            if name == b"row":
                self._row = int(ref.group(2)) if ref and ref.group(2) else self._row + 1
                self._column = 0
            else:
                letters = ref.group(1) if ref else b""
                if letters:
                    column = self._letters.get(letters)
                    if column is None:
                        column = self._letters[letters] = column_index(letters.decode()) + 1
                    self._column = column
                else:
                    self._column += 1
                if ref and ref.group(2):
                    self._row = max(self._row, int(ref.group(2)))
                bounds.cells += 1
                bounds.columns = max(bounds.columns, self._column)
            bounds.rows = max(bounds.rows, self._row)


def shared_lengths(stream: Iterator[bytes]) -> list[int]:
    """The text length of every shared string (``<si>``), streamed."""
    lengths: list[int] = []
    carry = b""
    for chunk in stream:
        data = carry + chunk
        end = data.rfind(b"</si>")
        if end < 0:
            carry = data if len(data) <= _MAX_CARRY else data[-_MAX_CARRY:]
            continue
        end += 5
        lengths.extend(len(item) for item in _SHARED_ITEM.findall(data, 0, end))
        carry = data[end:]
    return lengths


_HINT_RANGE = (
    "Delete the rows and columns after the data (or copy the data to a new sheet), save, "
    "and try again."
)


def check_bounds(path: Path, name: str, bounds: Bounds, limits: Limits) -> None:
    """Refuse a sheet whose reading would allocate far more than its data needs."""
    where = f"{column_letters(bounds.columns)}{bounds.rows}" if bounds.columns else ""
    hint = _HINT_RANGE
    if bounds.rows - 1 > limits.max_rows and bounds.cells >= bounds.rows - 1:
        raise InputError(
            f"has {bounds.rows:,} rows, more than the {limits.max_rows:,} data rows allowed in "
            "one file.",
            path=path,
            sheet=name,
            hint=HINT_SPLIT,
        )
    if bounds.rows - 1 > limits.max_rows:  # a few cells far below the data
        problem = f"has a cell at {where}, far beyond its data ({bounds.cells:,} cells): more "
        problem += f"than the {limits.max_rows:,} data rows allowed in one file"
    elif bounds.columns > limits.max_columns:
        problem = f"has a cell in column {column_letters(bounds.columns)} (column "
        problem += f"{bounds.columns:,}), beyond the {limits.max_columns:,} columns allowed"
    elif bounds.rows * bounds.columns > limits.max_cells:
        problem = f"has a used range up to {where} ({bounds.rows * bounds.columns:,} cells), "
        problem += f"more than the {limits.max_cells:,} allowed"
    elif bounds.expanded > limits.max_expanded_bytes:
        problem = f"repeats its shared text into {bounds.expanded / 2**20:,.0f} MiB of cells, "
        problem += f"more than the {limits.max_expanded_bytes // 2**20:,} MiB allowed"
        hint = "Remove the long repeated text, or split the file."
    else:
        return
    raise InputError(problem + "; it was not read.", path=path, sheet=name, hint=hint)


def column_letters(number: int) -> str:
    """Excel's letters for a 1-based column number (1 -> A, 16384 -> XFD)."""
    letters = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters
