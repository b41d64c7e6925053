"""The validation workbook: every finding (``Problems``) and the input with a status (``Rows``)."""

from __future__ import annotations

from pathlib import Path

from batch.intake.sheet import Sheet
from batch.intake.validate import ValidationResult
from batch.reports.workbook import ReportWorkbook

__all__ = ["problems_table", "rows_table", "user_columns", "write_validation_workbook"]

PROBLEM_HEADERS = ("Row", "Column", "Value", "Rule", "Message", "Severity")
ROW_EXTRA_HEADERS = ("Row", "Status", "Detail")


def problems_table(result: ValidationResult) -> tuple[tuple[str, ...], list[tuple[object, ...]]]:
    """The ``Problems`` sheet: one line per finding."""
    return PROBLEM_HEADERS, [
        (f.row, f.column, f.value, f.rule, f.message, f.severity.value) for f in result.findings
    ]


def user_columns(sheet: Sheet) -> int:
    """How many columns to keep in view on ``Rows``: up to the user's, when it is near the left.

    Scrolling right to Status then keeps the user beside it.
    """
    found = [sheet.fields[f] for f in ("upn", "object_id") if f in sheet.fields]
    first = min(found, default=None)
    return first + 1 if first is not None and first < 4 else 0


def rows_table(result: ValidationResult) -> tuple[tuple[str, ...], list[tuple[object, ...]]]:
    """The ``Rows`` sheet: the input exactly as given, plus Row, Status and Detail."""
    taken = {h.casefold() for h in result.sheet.headers}
    extra = tuple(f"{h} (m365batch)" if h.casefold() in taken else h for h in ROW_EXTRA_HEADERS)
    headers = tuple(result.sheet.headers) + extra
    rows: list[tuple[object, ...]] = [
        (*r.values, r.row, r.status.value, result.detail(r.row)) for r in result.rows
    ]
    return headers, rows


def write_validation_workbook(
    result: ValidationResult, path: Path, *, overwrite: bool = False
) -> Path:
    """Write the validation workbook (Problems, Rows) atomically; return its path."""
    with ReportWorkbook(path, overwrite=overwrite) as book:
        headers, rows = problems_table(result)
        book.add_table("Problems", headers, rows, kinds={"Row": "int"}, status_column=None)
        headers, rows = rows_table(result)
        book.add_table(
            "Rows",
            headers,
            rows,
            kinds={headers[-3]: "int"},
            status_column=headers[-2],
            freeze_columns=user_columns(result.sheet),
        )
        book.fit_for_print()
    return book.path
