"""The Summary sheet as a dashboard: the answer first, the evidence after.

What a person opening a report wants first is the outcome: how many rows are done, how many
need them, and which. So the sheet shows, top to bottom:

1. a title and one line saying what the workbook is (a plan writes nothing; seats are a
   forecast there);
2. the counts per status as big coloured figures;
3. "Needs your attention": every row that did not end as asked, its reason in words and
   what to do;
4. a small table (seats per product, before -> after) and the chart the caller adds;
5. the run's facts (tenant, file, hash, times, requests, throttling), smaller, at the end.

The facts stay as label / value pairs in columns A and B, so scripts can read them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from batch.reports.workbook import STATUS_COLOURS, ReportWorkbook, clean_text

__all__ = ["AttentionLine", "Dashboard", "text_lines", "write_dashboard"]

#: how many rows the attention table lists before pointing at the Rows sheet
ATTENTION_ROWS = 500
_WIDTHS = (34, 34, 14, 60, 44, 14, 14)
_GREY = "#595959"


@dataclass(frozen=True)
class AttentionLine:
    """One row that needs a person: where it is, what happened and what to do."""

    row: int | str
    user: str
    status: str
    reason: str
    todo: str = ""


@dataclass
class Dashboard:
    """What goes on a Summary page."""

    title: str
    subtitle: str
    counts: Sequence[tuple[str, int]]
    attention: Sequence[AttentionLine] = ()
    attention_title: str = "Needs your attention"
    attention_headers: Sequence[str] = ("Row", "User", "Status", "Reason", "What to do")
    all_fine: str = "Nothing needs your attention."
    table_title: str = ""
    table_headers: Sequence[str] = ()
    table_rows: Sequence[Sequence[object]] = ()
    chart_rows: int = 0  #: rows left free under the table for a chart
    facts: Sequence[tuple[str, object]] = ()
    facts_title: str = "About this run"


@dataclass(frozen=True)
class Placed:
    """Where the dashboard left room: the worksheet and the chart's top-left cell."""

    sheet: Any
    chart_at: str


def write_dashboard(book: ReportWorkbook, name: str, board: Dashboard) -> Placed:
    """Write ``board`` as the sheet ``name``; return where a chart can go."""
    sheet = book.book.add_worksheet(name)
    for col, width in enumerate(_WIDTHS):
        sheet.set_column(col, col, width)
    book.write_text(sheet, 0, 0, board.title, bold=True, font_size=16)
    book.write_text(sheet, 1, 0, board.subtitle, italic=True, font_color=_GREY)
    row = _counts(book, sheet, 3, board.counts)
    row = _attention(book, sheet, row + 1, board)
    chart_at = f"A{row + 1}"
    if board.table_headers:
        row = _table(book, sheet, row + 1, board) + 1
        chart_at = f"A{row + 1}"
        row += board.chart_rows
    _facts(book, sheet, row + 1, board)
    sheet.hide_gridlines(2)
    return Placed(sheet, chart_at)


def _counts(book: ReportWorkbook, sheet: Any, row: int, counts: Sequence[tuple[str, int]]) -> int:
    """The figures: a label above each big number, coloured as the status is in Rows."""
    for col, (label, count) in enumerate(counts):
        fill, font = STATUS_COLOURS.get(label, ("#F2F2F2", "#262626"))
        if not count:
            fill, font = "#F7F7F7", "#A6A6A6"
        style = {"bg_color": fill, "font_color": font, "align": "center", "bold": True}
        book.write_text(sheet, row, col, label, **style)
        big = book.fmt(font_size=22, num_format="#,##0", **style)
        sheet.write_number(row + 1, col, count, big)
    sheet.set_row(row + 1, 32)
    return row + 2


def _attention(book: ReportWorkbook, sheet: Any, row: int, board: Dashboard) -> int:
    lines = list(board.attention)
    title = f"{board.attention_title} ({len(lines)})" if lines else board.all_fine
    book.write_text(sheet, row, 0, title, bold=True, font_size=13)
    row += 1
    if not lines:
        return row + 1
    header = {"bold": True, "bg_color": "#D9E1F2", "bottom": 1}
    for col, text in enumerate(board.attention_headers):
        book.write_text(sheet, row, col, text, **header)
    wrap = {"text_wrap": True, "valign": "top"}
    for line in lines[:ATTENTION_ROWS]:
        row += 1
        fill, font = STATUS_COLOURS.get(line.status, ("#FFFFFF", "#000000"))
        kind = "int" if isinstance(line.row, int) else "text"
        book.write_value(sheet, row, 0, line.row, kind, align="left", valign="top")
        book.write_text(sheet, row, 1, line.user, **wrap)
        book.write_text(sheet, row, 2, line.status, bg_color=fill, font_color=font, valign="top")
        book.write_text(sheet, row, 3, clean_text(line.reason), **wrap)
        book.write_text(sheet, row, 4, line.todo, **wrap)
        tall = text_lines((line.user, line.reason, line.todo), (_WIDTHS[1], *_WIDTHS[3:5]))
        sheet.set_row(row, 15 * tall)
    if len(lines) > ATTENTION_ROWS:
        row += 1
        more = len(lines) - ATTENTION_ROWS
        book.write_text(sheet, row, 1, f"... and {more} more: filter Rows on Status", italic=True)
    return row + 2


def text_lines(texts: Sequence[str], widths: Sequence[int]) -> int:
    """How many lines the tallest of ``texts`` wraps to in columns of ``widths`` characters.

    Row heights are set from this: spreadsheet programs do not all grow a row for wrapped
    text when they open a file.
    """
    tallest = 1
    for text, width in zip(texts, widths, strict=False):
        room = max(width - 2, 1)
        lines = sum(max(1, -(-len(part) // room)) for part in str(text).split("\n"))
        tallest = max(tallest, lines)
    return tallest


def _table(book: ReportWorkbook, sheet: Any, row: int, board: Dashboard) -> int:
    book.write_text(sheet, row, 0, board.table_title, bold=True, font_size=13)
    row += 1
    header = {"bold": True, "bg_color": "#D9E1F2", "bottom": 1, "text_wrap": True}
    for col, text in enumerate(board.table_headers):
        book.write_text(sheet, row, col, text, **header)
    for values in board.table_rows:
        row += 1
        for col, value in enumerate(values):
            if isinstance(value, int | float) and not isinstance(value, bool):
                book.write_value(sheet, row, col, value, "int")
            else:
                book.write_text(sheet, row, col, "" if value is None else value, text_wrap=True)
    return row + 1


def _facts(book: ReportWorkbook, sheet: Any, row: int, board: Dashboard) -> None:
    book.write_text(sheet, row, 0, board.facts_title, bold=True, font_color=_GREY)
    small: dict[str, Any] = {"font_size": 9, "font_color": _GREY}
    for label, value in board.facts:
        row += 1
        book.write_text(sheet, row, 0, label, **small)
        if isinstance(value, bool) or value is None:
            book.write_text(sheet, row, 1, "" if value is None else str(value), **small)
        elif isinstance(value, int | float):
            kind = "int" if isinstance(value, int) else "number"
            book.write_value(sheet, row, 1, value, kind, align="left", **small)
        else:
            book.write_value(sheet, row, 1, value, _kind(value), align="left", **small)


def _kind(value: object) -> str:
    if isinstance(value, dt.datetime):
        return "datetime"
    return "date" if isinstance(value, dt.date) else "text"
