"""Workbook: safe XLSX writing primitives that every report of the product uses.

Built on XlsxWriter, which writes large sheets about twice as fast as openpyxl here
(100,000 rows x 12 columns: ~10 s against ~18 s on a 2-core machine; see
``scripts/bench_intake.py``) and has data validation, charts and formats built in.

What every sheet gets: header row frozen, filters on, column widths fitted from a sample of
rows (fast), statuses coloured, number/date/currency formats by column kind.

Untrusted text (sheet cells, Graph error messages) is always written as a string, never as
a formula: text starting with ``=``, ``+``, ``-``, ``@``, tab, CR or LF also gets Excel's
quote prefix, so editing the cell in Excel does not turn it into a formula either (OWASP
CSV injection; ASVS 1.2.10). Control characters XML cannot hold are replaced by U+FFFD,
and text over Excel's 32,767-character cell limit is cut with a visible marker. Values
such as ``#N/A`` stay text.

Saving is atomic: the workbook is written to a temporary file in the target folder,
fsynced, then moved into place; an existing file is never replaced unless asked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xlsxwriter
from xlsxwriter.exceptions import XlsxWriterException

from batch.crashpoints import crashpoint
from batch.errors import ReportError
from batch.files import AtomicFile
from batch.intake.sources import paused_gc
from batch.status import RowStatus

__all__ = [
    "CELL_LIMIT",
    "STATUS_COLOURS",
    "ReportWorkbook",
    "clean_text",
    "needs_quote_prefix",
    "output_path",
]

CELL_LIMIT = 32_767
CUT_MARKER = " [... cut: {n:,} more characters]"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
WIDTH_SAMPLE = 500  #: rows looked at to fit column widths
MAX_WIDTH = 50  #: widest a text column gets; longer text wraps within it
EXISTS = "{path} already exists; choose another --output name."

#: fill and font colours per status (Excel's "good / neutral / bad" palette)
STATUS_COLOURS: dict[str, tuple[str, str]] = {
    RowStatus.APPLIED: ("#C6EFCE", "#006100"),
    RowStatus.NO_CHANGE: ("#E2EFDA", "#375623"),
    RowStatus.READY: ("#DDEBF7", "#1F4E78"),
    RowStatus.PLANNED: ("#DDEBF7", "#1F4E78"),
    RowStatus.DEFERRED: ("#FFEB9C", "#9C5700"),
    RowStatus.SKIPPED: ("#EDEDED", "#505050"),
    RowStatus.INVALID: ("#FFC7CE", "#9C0006"),
    RowStatus.FAILED: ("#FFC7CE", "#9C0006"),
}

#: column kind -> Excel number format
NUMBER_FORMATS = {
    "int": "#,##0",
    "number": "#,##0.00",
    "currency": "#,##0.00",
    "percent": "0.0%",
    "date": "yyyy-mm-dd",
    "datetime": "yyyy-mm-dd hh:mm:ss",
}
_NUMERIC_KINDS = frozenset({"int", "number", "currency", "percent"})
_DATE_KINDS = frozenset({"date", "datetime"})


def needs_quote_prefix(text: str) -> bool:
    """True when Excel could read ``text`` as a formula if the cell were edited."""
    return text.startswith(_FORMULA_START)


def clean_text(value: object) -> str:
    """Text safe for a cell: control characters replaced, cut to the cell limit with a marker."""
    text = value if isinstance(value, str) else str(value)
    if _CONTROL.search(text):
        text = _CONTROL.sub("\ufffd", text)
    if len(text) > CELL_LIMIT:
        marker = CUT_MARKER.format(n=len(text) - CELL_LIMIT)
        keep = CELL_LIMIT - len(marker)
        marker = CUT_MARKER.format(n=len(text) - keep)
        text = text[:keep] + marker
    return text


def output_path(
    kind: str,
    *,
    input_path: Path | None = None,
    directory: Path | None = None,
    now: dt.datetime | None = None,
    suffix: str = ".xlsx",
) -> Path:
    """A timestamped name that does not exist yet, next to the input or in ``directory``/cwd.

    Example: ``hires-validate-20250403-141502.xlsx``.
    """
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    folder = directory or (input_path.parent if input_path else Path.cwd())
    stem = f"{input_path.stem}-{kind}" if input_path else f"m365batch-{kind}"
    candidate = folder / f"{stem}-{stamp}{suffix}"
    counter = 2
    while candidate.exists():
        candidate = folder / f"{stem}-{stamp}-{counter}{suffix}"
        counter += 1
    return candidate


@dataclass(frozen=True)
class TableInfo:
    """Where a table landed, for charts and validations that refer to it."""

    sheet: str
    rows: int  #: data rows written (the header is row 0)
    columns: int


class ReportWorkbook:
    """A workbook being built in a temporary file, saved atomically by :meth:`save`.

    Usage::

        with ReportWorkbook(path) as book:
            book.add_table("Rows", headers, rows, kinds={"Row": "int"}, status_column="Status")
        # saved here; on an exception the temporary file is dropped instead
    """

    def __init__(self, path: Path | str, *, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        if self.path.exists() and not overwrite:
            raise ReportError(EXISTS.format(path=self.path))
        folder = self.path.parent
        if not folder.is_dir():
            raise ReportError(f"cannot write {self.path}: the folder {folder} does not exist.")
        # Same folder, so the final move is a rename; created by the writer with the
        # user's umask (mkstemp would leave it private).
        try:
            self._file = AtomicFile(self.path, overwrite=overwrite)
        except FileExistsError as exc:
            raise ReportError(EXISTS.format(path=self.path)) from exc
        self.book = xlsxwriter.Workbook(
            str(self._file.temp),
            {
                # Never let a string become a formula, a number or a link.
                "strings_to_formulas": False,
                "strings_to_numbers": False,
                "strings_to_urls": False,
                "default_date_format": NUMBER_FORMATS["date"],
            },
        )
        self._formats: dict[tuple[tuple[str, Any], ...], Any] = {}
        self._closed = False
        # A big sheet is millions of small acyclic cell objects that the cyclic garbage
        # collector would scan again and again (a third of the writing time): it pauses
        # until the workbook is saved or dropped.
        self._paused = contextlib.ExitStack()
        self._paused.enter_context(paused_gc())

    # ------------------------------------------------------------------ formats

    def fmt(self, **properties: Any) -> Any:
        """A cached XlsxWriter format with these properties."""
        key = tuple(sorted(properties.items()))
        if key not in self._formats:
            self._formats[key] = self.book.add_format(dict(properties))
        return self._formats[key]

    # ------------------------------------------------------------------ writing

    def write_text(self, sheet: Any, row: int, col: int, value: object, **style: Any) -> None:
        """Write untrusted text as text (quote prefix when it looks like a formula)."""
        text = clean_text(value)
        if needs_quote_prefix(text):
            style = {**style, "quote_prefix": True}
        sheet.write_string(row, col, text, self.fmt(**style) if style else None)

    def write_value(
        self,
        sheet: Any,
        row: int,
        col: int,
        value: object,
        kind: str = "text",
        *,
        number_format: str | None = None,
        **style: Any,
    ) -> None:
        """Write a value by column kind: numbers and dates typed, everything else as text."""
        if value is None or value == "":
            if style:
                sheet.write_blank(row, col, None, self.fmt(**style))
            return
        if kind != "text":
            number_format = number_format or NUMBER_FORMATS.get(kind)
            if isinstance(value, bool):
                value = "TRUE" if value else "FALSE"
            elif isinstance(value, (int, float)) and kind in (
                "int",
                "number",
                "currency",
                "percent",
            ):
                sheet.write_number(row, col, value, self.fmt(num_format=number_format, **style))
                return
            elif isinstance(value, (dt.date, dt.datetime)) and kind in ("date", "datetime"):
                if isinstance(value, dt.datetime) and value.tzinfo is not None:
                    value = value.astimezone(dt.UTC).replace(tzinfo=None)
                sheet.write_datetime(row, col, value, self.fmt(num_format=number_format, **style))
                return
        self.write_text(sheet, row, col, value, **style)

    def add_table(
        self,
        name: str,
        headers: Sequence[str],
        rows: Iterable[Sequence[object]],
        *,
        kinds: Mapping[str, str] | None = None,
        status_column: str | None = "Status",
        max_width: int = MAX_WIDTH,
        currency: str | None = None,
        freeze_columns: int = 0,
    ) -> TableInfo:
        """A sheet from a header and rows: frozen header, filters, fitted widths, coloured statuses.

        Each column is as wide as its longest value (headers included, from the first
        :data:`WIDTH_SAMPLE` rows); a text column whose values are longer than ``max_width``
        is ``max_width`` wide and wraps, so nothing is cut off by the next column.

        :param kinds: header -> "text" (default), "int", "number", "currency", "percent",
            "date" or "datetime".
        :param currency: currency code shown in the format of "currency" columns (e.g. EUR).
        :param freeze_columns: columns kept in view when scrolling right (e.g. the user).
        """
        sheet = self.book.add_worksheet(_sheet_name(name))
        kinds = dict(kinds or {})
        header_style = {"bold": True, "bg_color": "#D9E1F2", "bottom": 1, "text_wrap": False}
        for col, header in enumerate(headers):
            self.write_text(sheet, 0, col, header, **header_style)
        col_kinds = [kinds.get(h, "text") for h in headers]
        col_formats = [
            f'#,##0.00 "{currency}"' if (k == "currency" and currency) else NUMBER_FORMATS.get(k)
            for k in col_kinds
        ]
        status_index = (
            list(headers).index(status_column)
            if status_column is not None and status_column in headers
            else -1
        )
        widths = [len(str(h)) for h in headers]
        long_cells: list[tuple[int, int, str]] = []  #: cells that wrap: their rows grow
        count = self._write_rows(
            sheet, rows, col_kinds, col_formats, status_index, widths, long_cells, max_width
        )
        self._fit_columns(sheet, widths, col_kinds, long_cells, max_width, status_index)
        sheet.freeze_panes(1, freeze_columns)
        if headers:
            sheet.autofilter(0, 0, max(count, 1), len(headers) - 1)
        return TableInfo(sheet=sheet.get_name(), rows=count, columns=len(headers))

    def _write_rows(
        self,
        sheet: Any,
        rows: Iterable[Sequence[object]],
        col_kinds: Sequence[str],
        col_formats: Sequence[str | None],
        status_index: int,
        widths: list[int],
        long_cells: list[tuple[int, int, str]],
        max_width: int,
    ) -> int:
        """Write the data rows from row 1 on; note widths and long cells of the first rows.

        Returns how many rows were written.
        """
        count = 0
        write_value, write_text = self.write_value, self.write_text
        # XlsxWriter's undecorated writers: the public ones only add A1-notation parsing
        write_string = getattr(sheet, "_write_string", sheet.write_string)
        write_number = getattr(sheet, "_write_number", sheet.write_number)
        write_datetime = getattr(sheet, "_write_datetime", sheet.write_datetime)
        # the formats every cell of a column or status shares, looked up once
        status_formats: dict[object, Any] = {}
        typed_formats = [
            self.fmt(num_format=col_formats[col])
            if kind in _NUMERIC_KINDS or kind in _DATE_KINDS
            else None
            for col, kind in enumerate(col_kinds)
        ]
        for count, values in enumerate(rows, start=1):  # noqa: B007 - count used after the loop
            for col, value in enumerate(values):
                kind = col_kinds[col] if col < len(col_kinds) else "text"
                if col == status_index and value in STATUS_COLOURS:
                    if value not in status_formats:
                        fill, font = STATUS_COLOURS[str(value)]
                        status_formats[value] = self.fmt(bg_color=fill, font_color=font)
                    write_string(count, col, str(value), status_formats[value])
                elif value is None or value == "":
                    continue  # an empty cell stays empty (and is no wider than its header)
                elif isinstance(value, str):
                    if (
                        not value.startswith(_FORMULA_START)
                        and len(value) <= CELL_LIMIT
                        and (value.isprintable() or not _CONTROL.search(value))
                    ):
                        write_string(count, col, value)  # fast path: plain text
                    else:
                        write_text(sheet, count, col, value)
                elif kind == "text":
                    write_text(sheet, count, col, value)
                elif (
                    kind in _NUMERIC_KINDS
                    and isinstance(value, (int, float))
                    and not isinstance(value, bool)
                ):
                    write_number(count, col, value, typed_formats[col])  # fast path: a number
                elif kind in _DATE_KINDS and isinstance(value, dt.date):
                    moment = value
                    if isinstance(moment, dt.datetime) and moment.tzinfo is not None:
                        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
                    write_datetime(count, col, moment, typed_formats[col])  # fast path: a date
                else:
                    write_value(sheet, count, col, value, kind, number_format=col_formats[col])
                if count <= WIDTH_SAMPLE and col < len(widths):
                    shown = _display_width(value)
                    widths[col] = max(widths[col], shown)
                    if shown > max_width - 2:
                        long_cells.append((count, col, str(value)))
        return count

    def _fit_columns(
        self,
        sheet: Any,
        widths: Sequence[int],
        kinds: Sequence[str],
        long_cells: Sequence[tuple[int, int, str]],
        max_width: int,
        status_index: int,
    ) -> None:
        """Columns as wide as their longest value; longer text wraps in ``max_width``."""
        wrap = self.fmt(text_wrap=True, valign="top")
        for col, width in enumerate(widths):
            if width + 2 > max_width and kinds[col] == "text":
                sheet.set_column(col, col, max_width, wrap)
            else:
                sheet.set_column(col, col, max(width + 2, 8))
        # cells with a format of their own (quote prefix) do not take the column's wrap
        for row, col, text in long_cells:
            if needs_quote_prefix(text) and kinds[col] == "text" and col != status_index:
                self.write_text(sheet, row, col, text, text_wrap=True, valign="top")
        _grow_rows(sheet, long_cells, kinds, max_width)

    def add_key_values(
        self, name: str, pairs: Iterable[tuple[str, object]], *, title: str | None = None
    ) -> Any:
        """A two-column sheet of labels and values (e.g. Summary); returns the worksheet."""
        sheet = self.book.add_worksheet(_sheet_name(name))
        pairs = list(pairs)
        row = 0
        if title:
            self.write_text(sheet, 0, 0, title, bold=True, font_size=14)
            row = 2
        for label, value in pairs:
            self.write_text(sheet, row, 0, label, bold=True)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.write_value(
                    sheet, row, 1, value, "int" if isinstance(value, int) else "number"
                )
            elif isinstance(value, (dt.date, dt.datetime)):
                self.write_value(
                    sheet, row, 1, value, "datetime" if isinstance(value, dt.datetime) else "date"
                )
            else:
                self.write_value(sheet, row, 1, "" if value is None else value)
            row += 1
        label_width = max((_display_width(label) for label, _ in pairs), default=20)
        sheet.set_column(0, 0, min(max(label_width + 2, 20), 45))
        sheet.set_column(1, 1, 70)
        return sheet

    def add_bar_chart(
        self,
        table: TableInfo,
        *,
        category_column: int,
        value_columns: Sequence[int],
        title: str,
        on_sheet: Any,
        at: str,
        headers: Sequence[str] | None = None,
        stacked: bool = False,
    ) -> None:
        """A bar chart of ``value_columns`` by ``category_column`` of a table, placed at ``at``.

        ``stacked`` puts the values end to end (assigned + free = a SKU's enabled seats).
        """
        if table.rows == 0:
            return
        chart = self.book.add_chart({"type": "bar", **({"subtype": "stacked"} if stacked else {})})
        last = table.rows
        for col in value_columns:
            series: dict[str, Any] = {
                "categories": [table.sheet, 1, category_column, last, category_column],
                "values": [table.sheet, 1, col, last, col],
            }
            series["name"] = [table.sheet, 0, col] if headers is None else headers[col]
            chart.add_series(series)
        chart.set_title({"name": title})
        chart.set_legend({"position": "bottom"})
        chart.set_size({"width": 720, "height": max(288, 24 * min(last, 40) + 96)})
        on_sheet.insert_chart(at, chart)

    def fit_for_print(self, *, no_repeat: Iterable[str] = ("Summary",)) -> None:
        """Print (or save as PDF) every sheet landscape on A4, one page wide and as many pages
        tall as it takes, with narrow margins and the file, sheet and "Page N of M" in the
        footer. A table's header row repeats on every page and its gridlines print; sheets in
        ``no_repeat`` (dashboards, instructions) keep their own look."""
        skip = set(no_repeat)
        for sheet in self.book.worksheets():
            sheet.set_landscape()
            sheet.set_paper(9)  # A4
            sheet.fit_to_pages(1, 0)
            sheet.set_margins(left=0.3, right=0.3, top=0.4, bottom=0.5)
            sheet.set_footer("&L&8&F: &A&R&8Page &P of &N")
            if sheet.get_name() not in skip:
                sheet.repeat_rows(0)
                sheet.hide_gridlines(0)  # shown on screen and printed

    def add_list_validation(
        self,
        sheet: Any,
        col: int,
        source: str,
        *,
        first_row: int = 1,
        last_row: int = 5000,
        title: str = "",
        message: str = "",
        strict: bool = False,
    ) -> None:
        """A dropdown on a column, from a range such as ``=Lists!$A$2:$A$40``."""
        sheet.data_validation(
            first_row,
            col,
            last_row,
            col,
            {
                "validate": "list",
                "source": source,
                "input_title": title[:32],
                "input_message": message[:255],
                # Lists may be comma-separated in one cell, so a free entry is allowed by default.
                "error_type": "stop" if strict else "information",
                "show_error": strict,
            },
        )

    # ------------------------------------------------------------------ saving

    def save(self) -> Path:
        """Close the workbook and move it into place atomically; return the final path."""
        if self._closed:
            return self.path
        self._closed = True
        try:
            self._save()
        finally:
            self._paused.close()
        return self.path

    def _save(self) -> None:
        try:
            self.book.close()
            self._file.commit(before_move=lambda: crashpoint("report.save"))
        except FileExistsError as exc:
            self._file.discard()
            raise ReportError(EXISTS.format(path=self.path)) from exc
        except (OSError, XlsxWriterException) as exc:
            self._file.discard()
            raise ReportError(f"cannot write {self.path}: {exc}.") from exc

    def discard(self) -> None:
        """Drop the temporary file (after a failure)."""
        self._closed = True
        self._paused.close()
        self._file.discard()

    def __enter__(self) -> ReportWorkbook:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is not None:
                # The original error matters, not one from closing a half-built workbook.
                with contextlib.suppress(Exception):
                    self.book.close()
                self.discard()
            else:
                self.save()
        finally:
            self._paused.close()


def _grow_rows(
    sheet: Any, cells: Sequence[tuple[int, int, str]], kinds: Sequence[str], width: int
) -> None:
    """Make rows tall enough for their wrapped text (not every program grows them on open)."""
    lines: dict[int, int] = {}
    room = max(width - 2, 1)
    for row, col, text in cells:
        if col < len(kinds) and kinds[col] == "text":
            count = sum(max(1, -(-len(part) // room)) for part in text.split("\n"))
            lines[row] = max(lines.get(row, 1), count)
    for row, count in lines.items():
        if count > 1:
            sheet.set_row(row, 15 * count)


def _sheet_name(name: str) -> str:
    """Excel sheet names: at most 31 characters, none of []:*?/\\."""
    return re.sub(r"[\[\]:*?/\\]", "_", name)[:31] or "Sheet"


def _display_width(value: object) -> int:
    if value is None:
        return 0
    text = value if isinstance(value, str) else str(value)
    if "\n" in text:
        return max(len(line) for line in text.split("\n"))
    return len(text)
