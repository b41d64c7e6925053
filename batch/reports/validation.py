"""The validation workbook: the answer (``Summary``: rows ready, every row that is not and what
to do), every finding (``Problems``) and the input with a status (``Rows``)."""

from __future__ import annotations

from pathlib import Path

from batch.intake.model import VALIDATION_STATUSES
from batch.intake.sheet import Sheet
from batch.intake.validate import ValidationResult
from batch.reports.printing import PrintedWorkbook
from batch.reports.summary import AttentionLine, Dashboard, write_dashboard
from batch.status import RowStatus

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


#: what to do about a row validation did not pass
TODO = {
    RowStatus.INVALID: "Correct the cell named in Problems, then check the sheet again.",
    RowStatus.DEFERRED: "Nothing now: it is applied on its date (or use --as-of).",
    RowStatus.SKIPPED: "Nothing, unless the row should count: see the reason.",
}


def _dashboard(result: ValidationResult) -> Dashboard:
    """The Summary: how many rows are ready, and every row that is not, with what to do."""
    counts = result.counts()
    sheet = result.sheet
    return Dashboard(
        title=f"Sheet check: {sheet.path.name}",
        subtitle=(
            f"Checked against the tenant's licenses for {result.as_of}; nothing was sent to "
            "the tenant. Ready rows go on to plan and apply."
        ),
        counts=[("Rows", len(result.rows))]
        + [(str(s), counts[s]) for s in VALIDATION_STATUSES if counts.get(s)],
        attention=[
            AttentionLine(r.row, r.user, r.status, result.detail(r.row), TODO.get(r.status, ""))
            for r in result.rows
            if r.status is not RowStatus.READY
        ],
        facts=[
            ("File", str(sheet.path)),
            ("Sheet", sheet.sheet_name or ""),
            ("Judged as of", str(result.as_of)),
            *[(f"Findings {rule}", n) for rule, n in result.counts_by_rule().most_common()],
            *[("Note", note) for note in sheet.notes],
        ],
        facts_title="About this check",
    )


def write_validation_workbook(
    result: ValidationResult, path: Path, *, overwrite: bool = False
) -> Path:
    """Write the validation workbook (Problems, Rows) atomically; return its path."""
    with PrintedWorkbook(path, overwrite=overwrite) as book:
        write_dashboard(book, "Summary", _dashboard(result))
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
        user = headers[user_columns(result.sheet) - 1 : user_columns(result.sheet)]
        book.fit_table_to_page(
            "Rows", headers, rows, kinds={headers[-3]: "int"}, keep=[*user, *headers[-2:]]
        )
        book.fit_for_print()
    return book.path
