"""Print layout for wide tables: many columns, one page wide, still readable on paper.

:meth:`ReportWorkbook.fit_for_print` prints every sheet one A4 page wide. A table much
wider than a page then prints too small to read: the run report's ``Rows`` holds the
sheet's own columns plus nine of the run's, 500 characters wide at 30 %.
:func:`fit_table_to_page` narrows such a table to :data:`BUDGET` characters first (about
60 % on the page): columns that are mostly empty give up their width first, then the
widest text columns are narrowed to a common width; text wraps in them, the header row
wraps, and the first rows grow to their wrapped text (as ``add_table`` does).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from batch.reports.workbook import STATUS_COLOURS, ReportWorkbook, needs_quote_prefix

__all__ = ["BUDGET", "PrintedWorkbook", "fit_table_to_page", "print_widths"]

#: the widest a table may be, in characters, to print readably one A4 landscape page wide
#: (about 150 characters fit at 100 %; 280 prints at about 55 %, 6 pt)
BUDGET = 280
#: no column is narrowed below this (a header's words wrap to fit it)
FLOOR = 10
#: a column in ``keep`` is not narrowed below this (an address: 30 characters or so)
KEEP = 34
#: a column with values in fewer than this share of its rows is "mostly empty"
SPARSE = 0.2
#: rows looked at for widths and grown to their wrapped text (as ``add_table`` does)
SAMPLE = 500
LINE_HEIGHT = 15
#: a table longer than this is not narrowed: nobody prints hundreds of pages, and a column
#: format on every cell of 100,000 rows costs about 15 % more writing time
PRINTABLE_ROWS = 5_000
HEADER_STYLE = {"bold": True, "bg_color": "#D9E1F2", "bottom": 1}


def _shown(value: object) -> str:
    return "" if value is None else str(value)


def _natural(
    headers: Sequence[str], rows: Sequence[Sequence[object]], text: Sequence[bool], cap: int
) -> list[int]:
    """Each column's width as ``add_table`` gives it: its longest value, text capped."""
    widths = [len(h) for h in headers]
    for values in rows[:SAMPLE]:
        for col, value in enumerate(values[: len(widths)]):
            longest = max((len(p) for p in _shown(value).split("\n")), default=0)
            widths[col] = max(widths[col], longest)
    return [max(min(w + 2, cap) if text[c] else w + 2, 8) for c, w in enumerate(widths)]


def print_widths(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    text: Sequence[bool],
    keep: Sequence[int] = (),
    budget: int = BUDGET,
    cap: int = 50,
) -> list[int]:
    """Column widths that fit ``budget`` characters in all: mostly empty text columns
    first shrink to :data:`FLOOR`, then the widest text columns share a common width.
    Columns that are not ``text`` (numbers, dates) keep theirs; those in ``keep`` up to
    :data:`KEEP` characters."""
    widths = _natural(headers, rows, text, cap)
    if sum(widths) <= budget:
        return widths
    sample = rows[:SAMPLE] or [()]
    movable = [c for c in range(len(headers)) if text[c]]
    # never so narrow that a word of the header breaks ("LicensesAfter"); a kept column
    # (the user) keeps up to KEEP characters
    floor = [max(FLOOR, *(len(word) + 2 for word in h.split())) for h in headers]
    for col in keep:
        floor[col] = max(floor[col], min(widths[col], KEEP))
    for col in movable:
        filled = sum(1 for r in sample if col < len(r) and _shown(r[col]).strip())
        if filled < SPARSE * len(sample):
            widths[col] = min(widths[col], floor[col])
    fixed = sum(w for c, w in enumerate(widths) if c not in movable)
    # the widest common width the movable columns can have within the budget
    limit = max(widths[c] for c in movable) if movable else 0
    while (
        limit > FLOOR
        and fixed + sum(min(w, max(limit, floor[c])) for c, w in _at(widths, movable)) > budget
    ):
        limit -= 1
    return [min(w, max(limit, floor[c])) if c in movable else w for c, w in enumerate(widths)]


def _at(widths: Sequence[int], columns: Sequence[int]) -> list[tuple[int, int]]:
    return [(c, widths[c]) for c in columns]


def _lines(text: str, width: int) -> int:
    """Lines ``text`` takes wrapped in a column ``width`` wide (text is narrower than the
    digits a width counts, so a line holds about ``width`` characters)."""
    room = max(width, 1)
    return sum(len(textwrap.wrap(part, room)) or 1 for part in text.split("\n"))


def fit_table_to_page(
    book: ReportWorkbook,
    name: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    kinds: Mapping[str, str] | None = None,
    keep: Sequence[str] = (),
    budget: int = BUDGET,
) -> None:
    """Narrow the table ``add_table`` wrote on sheet ``name`` to print readably one page
    wide (see :func:`print_widths`); nothing changes when it already fits, or when it is
    longer than :data:`PRINTABLE_ROWS` (too long to print).

    :param keep: headers whose width stays (a status column, coloured cell by cell).
    """
    if len(rows) > PRINTABLE_ROWS:
        return
    kinds = kinds or {}
    text = [kinds.get(h, "text") == "text" for h in headers]
    kept = [headers.index(h) for h in keep if h in headers]
    # cells with formats of their own (numbers, statuses): moved to the top of a taller row
    kinds_of = [
        (c, kinds.get(h, "text")) for c, h in enumerate(headers) if not text[c] or c in kept
    ]
    natural = _natural(headers, rows, text, 50)
    widths = print_widths(headers, rows, text=text, keep=kept, budget=budget)
    if widths == natural:
        return
    sheet: Any = book.book.get_worksheet_by_name(name)
    wrap, top = book.fmt(text_wrap=True, valign="top"), book.fmt(valign="top")
    for col, width in enumerate(widths):  # every cell at the top of its (taller) row
        sheet.set_column(col, col, width, wrap if width < natural[col] else top)
    for col, header in enumerate(headers):
        book.write_text(sheet, 0, col, header, text_wrap=True, valign="bottom", **HEADER_STYLE)
    sheet.set_row(0, LINE_HEIGHT * max(_lines(h, w) for h, w in zip(headers, widths, strict=True)))
    for index, values in enumerate(rows[:SAMPLE], start=1):
        tallest = 1
        for col, value in enumerate(values[: len(widths)]):
            shown = _shown(value)
            if not text[col] or not shown:
                continue
            tallest = max(tallest, _lines(shown, widths[col]))
            if col not in kept and needs_quote_prefix(shown) and len(shown) + 2 > widths[col]:
                # a cell with a format of its own does not take the column's wrap
                book.write_text(sheet, index, col, shown, text_wrap=True, valign="top")
        if tallest > 1:
            sheet.set_row(index, LINE_HEIGHT * tallest)
            _to_top(book, sheet, index, values, [k for k in kinds_of if k[0] < len(values)])


def _to_top(
    book: ReportWorkbook,
    sheet: Any,
    row: int,
    values: Sequence[object],
    cells: Sequence[tuple[int, str]],
) -> None:
    """Write the cells that carry their own format again, at the top of their row."""
    for col, kind in cells:
        value = values[col]
        if isinstance(value, str) and value in STATUS_COLOURS:
            fill, font = STATUS_COLOURS[value]
            book.write_text(sheet, row, col, value, bg_color=fill, font_color=font, valign="top")
        elif kind == "text" and value is not None and value != "":
            book.write_text(sheet, row, col, value, text_wrap=True, valign="top")
        elif value is not None and value != "":
            book.write_value(sheet, row, col, value, kind, valign="top")


class PrintedWorkbook(ReportWorkbook):
    """A :class:`ReportWorkbook` for reports people print: wide tables can be narrowed."""

    def fit_table_to_page(
        self,
        name: str,
        headers: Sequence[str],
        rows: Sequence[Sequence[object]],
        *,
        kinds: Mapping[str, str] | None = None,
        keep: Sequence[str] = (),
        budget: int = BUDGET,
    ) -> None:
        """See :func:`fit_table_to_page`."""
        fit_table_to_page(self, name, headers, rows, kinds=kinds, keep=keep, budget=budget)

    def __enter__(self) -> PrintedWorkbook:
        return self
