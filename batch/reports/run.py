"""Report: the run workbook of ``plan``, ``apply``, ``resume`` and ``undo``.

Sheets, as the product contract describes them:

- ``Summary``: a dashboard (:mod:`batch.reports.summary`): rows per status as big figures,
  every row that needs attention with its reason and what to do, seats per product before
  -> after (as read back; a forecast in a plan, labelled so) and a chart by product, then
  the facts: tenant, input file and its SHA-256, run id, mode, start and end, requests,
  throttled answers and retries;
- ``Rows``: the input exactly as given (same columns, same order) plus Row, Status, Added,
  Removed, Detail, ErrorCode, RequestId, Verified and LicensesAfter; every input row once;
- ``Problems``: every validation finding;
- ``Licenses``: per SKU purchased, warning, suspended, assigned and free, before and after;
- ``Changes``: every write sent to Graph, with its outcome.

Licenses are named as people know them, "Microsoft 365 E3 (SPE_E3)", and Graph's service
plan GUIDs are translated (:func:`batch.intake.catalog.name_ids`). All text goes through
:class:`batch.reports.workbook.ReportWorkbook`, so nothing from a sheet or from Graph can
become a formula.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch.intake.catalog import name_ids, name_parts, part_namer, product_name
from batch.intake.validate import ValidationResult
from batch.reports.printing import PrintedWorkbook
from batch.reports.summary import AttentionLine, Dashboard, write_dashboard
from batch.reports.validation import problems_table, user_columns
from batch.run.plan import Plan, RowPlan
from batch.run.tenant import SkuSeats
from batch.status import STATUS_ORDER, RowStatus

ROW_COLUMNS = (
    "Row",
    "Status",
    "Added",
    "Removed",
    "Detail",
    "ErrorCode",
    "RequestId",
    "Verified",
    "LicensesAfter",
)


@dataclass
class RowOutcome:
    """A row's final line in the report (from the plan, the journal and the read-back)."""

    status: RowStatus
    detail: str = ""
    added: str = ""
    removed: str = ""
    error_code: str = ""
    request_id: str = ""
    verified: bool | None = None  #: the read-back's answer; None: not checked
    licenses_after: str = ""
    user: str = ""  #: how the row names its user (UPN, else ObjectId)

    @property
    def needs_attention(self) -> bool:
        """True unless the row ended as asked (Applied or NoChange)."""
        return self.status not in (RowStatus.APPLIED, RowStatus.NO_CHANGE)

    @property
    def reason(self) -> str:
        """The row's reason in words, with its error code when Graph gave one."""
        if self.error_code and self.error_code not in self.detail:
            return f"{self.detail} ({self.error_code})" if self.detail else self.error_code
        return self.detail


#: the Changes sheet: one line per write sent to Graph
CHANGE_HEADERS = (
    "Time",
    "Row",
    "User",
    "Operation",
    "Change",
    "Outcome",
    "HTTP status",
    "Error",
    "Attempts",
    "RequestId",
)
CHANGE_KINDS = {"Row": "int", "HTTP status": "int", "Attempts": "int"}


@dataclass
class ChangeLine:
    """One write sent to Graph, for the Changes sheet."""

    time: str
    row: int
    user: str
    operation: str
    summary: str
    outcome: str
    status: int | None
    error: str
    attempts: int
    request_id: str

    def cells(self) -> tuple[object, ...]:
        """The line's cells, in :data:`CHANGE_HEADERS` order."""
        return (
            self.time,
            self.row,
            self.user,
            self.operation,
            self.summary,
            self.outcome,
            self.status,
            self.error,
            self.attempts,
            self.request_id,
        )


@dataclass
class RunFacts:
    """What the Summary sheet says about the run."""

    tenant: str
    mode: str  # plan | apply | resume | undo
    run_id: str
    input_path: Path | None
    input_sha256: str | None
    started: dt.datetime
    finished: dt.datetime
    options: Mapping[str, object] = field(default_factory=dict)
    counters: Mapping[str, float] = field(default_factory=dict)  # requests, throttled, retries...
    notes: Sequence[str] = ()


def yes_no(value: bool | None) -> str:
    """A yes/no cell: ``Yes``, ``No``, or empty when it was not checked."""
    return "" if value is None else ("Yes" if value else "No")


def plan_outcomes(plan: Plan) -> dict[int, RowOutcome]:
    """Row outcomes for a plan that has not been applied."""
    return {
        row.row: RowOutcome(
            status=RowStatus(row.status),
            detail=row.detail,
            added=", ".join(row.added),
            removed=", ".join(row.removed),
            error_code=row.error_code or "",
            user=row.request.user,
        )
        for row in plan.rows
    }


def write_run_report(
    path: Path,
    *,
    facts: RunFacts,
    validation: ValidationResult,
    plan: Plan,
    outcomes: Mapping[int, RowOutcome],
    seats_after: Iterable[SkuSeats] | None = None,
    changes: Sequence[ChangeLine] = (),
    overwrite: bool = False,
) -> Path:
    """Write the run workbook atomically; return its path."""
    after = {s.sku_id: s for s in seats_after} if seats_after is not None else None
    names = product_names(seat.before for seat in plan.seats)
    lines = _seat_lines(plan, after)
    with PrintedWorkbook(path, overwrite=overwrite) as book:
        board = _dashboard(facts, validation, plan, outcomes, after, names)
        board.chart_rows = chart_rows(len(lines))
        placed = write_dashboard(book, "Summary", board)
        headers, rows = _rows_table(validation, plan.rows, outcomes, names)
        width = len(validation.sheet.headers)  # the input's columns come first, as given
        book.add_table(
            "Rows",
            headers,
            rows,
            kinds={headers[width]: "int"},
            status_column=headers[width + 1],
            freeze_columns=user_columns(validation.sheet),
        )
        # printed one page wide: narrowed first to stay readable (user, status, detail kept)
        keep = [*headers[user_columns(validation.sheet) - 1 : user_columns(validation.sheet)]]
        keep += [headers[width + 1], headers[width + 4]]
        book.fit_table_to_page("Rows", headers, rows, kinds={headers[width]: "int"}, keep=keep)
        headers, problems = problems_table(validation)
        named = part_namer(names)
        problems = [(*p[:4], named(str(p[4])), *p[5:]) for p in problems]
        book.add_table("Problems", headers, problems, kinds={"Row": "int"}, status_column=None)
        add_licenses_sheet(
            book,
            lines,
            summary=placed.sheet,
            chart_at=placed.chart_at,
            title="Seats per product after the run" if after else "Seats per product (forecast)",
        )
        book.add_table(
            "Changes",
            CHANGE_HEADERS,
            [_named_change(c.cells(), names) for c in changes],
            kinds=CHANGE_KINDS,
            status_column=None,
        )
        book.fit_for_print()
    return book.path


def product_names(seats: Iterable[SkuSeats]) -> dict[str, str]:
    """Part number -> Microsoft's product name, for the tenant's SKUs the catalog knows."""
    return {s.part_number: name for s in seats if (name := product_name(s.sku_id))}


def chart_rows(skus: int) -> int:
    """Sheet rows a seat chart of ``skus`` bars takes (see ``ReportWorkbook.add_bar_chart``)."""
    return max(288, 24 * min(skus, 40) + 96) // 20 + 2


def _named_change(cells: tuple[object, ...], names: Mapping[str, str]) -> tuple[object, ...]:
    change, error = CHANGE_HEADERS.index("Change"), CHANGE_HEADERS.index("Error")
    named = list(cells)
    named[change] = name_parts(str(cells[change] or ""), names)
    named[error] = name_parts(name_ids(str(cells[error] or "")), names)
    return tuple(named)


#: what to do about a row, by its error code (else by its status)
TODO_BY_CODE = {
    "UserNotFound": "Check the address, or create the user first, then run again.",
    "NoUsageLocation": "Fill in the country column, or run with --default-usage-location.",
    "NoSeats": "Buy seats or free some, then run again: the row is picked up then.",
    "MutuallyExclusiveViolation": "Disable one of the two plans, or remove the other license.",
    "AccountDisabled": "Enable the account first, or run with --include-disabled.",
    "GroupProblem": "Check the group name in the sheet.",
}
TODO_BY_STATUS = {
    RowStatus.INVALID: "Correct the cell named in Problems, then run again.",
    RowStatus.DEFERRED: "Nothing now: run again on its date.",
    RowStatus.SKIPPED: "Nothing, unless the row should count: see the reason.",
    RowStatus.FAILED: "Read the reason; fix it and run again.",
    RowStatus.PLANNED: "Not written yet: m365batch resume finishes the run.",
}


def _attention(
    plan: Plan, outcomes: Mapping[int, RowOutcome], names: Mapping[str, str], *, planning: bool
) -> list[AttentionLine]:
    fine = {RowStatus.APPLIED, RowStatus.NO_CHANGE} | ({RowStatus.PLANNED} if planning else set())
    lines = []
    for row in plan.rows:
        outcome = outcomes[row.row]
        if outcome.status in fine:
            continue
        todo = TODO_BY_CODE.get(outcome.error_code) or TODO_BY_STATUS.get(outcome.status, "")
        reason = name_parts(name_ids(outcome.detail or outcome.error_code), names)
        lines.append(AttentionLine(row.row, row.request.user, outcome.status, reason, todo))
    return lines


def _dashboard(
    facts: RunFacts,
    validation: ValidationResult,
    plan: Plan,
    outcomes: Mapping[int, RowOutcome],
    after: Mapping[str, SkuSeats] | None,
    names: Mapping[str, str],
) -> Dashboard:
    planning = facts.mode == "plan"
    counts: dict[RowStatus, int] = {}
    for outcome in outcomes.values():
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    source = facts.input_path.name if facts.input_path else "the sheet"
    when = facts.finished.replace(microsecond=0)
    subtitle = (
        f"Plan made {when}: nothing has been written yet. Seats below are a forecast."
        if planning
        else f"{facts.mode.capitalize()} finished {when}. Seats below are as read back after it."
    )
    seats = []
    for seat in plan.seats:
        if not (seat.taken or seat.freed or seat.shortfall):
            continue
        now = (after or {}).get(seat.sku_id)
        assigned, free = (now.consumed, now.free) if now else (seat.consumed_after, seat.free_after)
        left = f"{free} free" + (
            f": short by {seat.shortfall}, buy {seat.shortfall} more or drop rows"
            if seat.shortfall
            else ""
        )
        name = names.get(seat.part_number, seat.part_number)
        seats.append((name, seat.part_number, f"{seat.consumed} -> {assigned}", left))
    return Dashboard(
        title=f"License changes from {source}",
        subtitle=subtitle,
        counts=[("Rows", len(validation.rows))]
        + [(str(s), counts[s]) for s in STATUS_ORDER if counts.get(s)],
        attention=_attention(plan, outcomes, names, planning=planning),
        table_title="Seats per product" + (" (forecast)" if planning or after is None else ""),
        table_headers=(
            "Product",
            "SKU",
            "Assigned",
            "Free after" + (" (forecast)" if after is None else ""),
        ),
        table_rows=seats,
        facts=_summary_pairs(facts, validation, plan, counts),
    )


def _summary_pairs(
    facts: RunFacts, validation: ValidationResult, plan: Plan, counts: Mapping[RowStatus, int]
) -> list[tuple[str, object]]:
    pairs: list[tuple[str, object]] = [
        ("Tenant", facts.tenant),
        ("Mode", facts.mode),
        ("Run id", facts.run_id),
        ("Input file", str(facts.input_path) if facts.input_path else ""),
        ("Sheet", validation.sheet.sheet_name or ""),
        ("Input SHA-256", facts.input_sha256 or ""),
        ("Started", facts.started.replace(microsecond=0)),
        ("Finished", facts.finished.replace(microsecond=0)),
        ("Rows in input", len(validation.rows)),
    ]
    pairs += [(f"Rows {status}", counts.get(status, 0)) for status in STATUS_ORDER]
    pairs += [
        (f"Option {name}", "" if value is None else str(value))
        for name, value in facts.options.items()
    ]
    for name, value in facts.counters.items():
        pairs.append((name, value))
    pairs += [("Note", note) for note in facts.notes]
    return pairs


def _rows_table(
    validation: ValidationResult,
    rows: Sequence[RowPlan],
    outcomes: Mapping[int, RowOutcome],
    names: Mapping[str, str],
) -> tuple[tuple[str, ...], list[tuple[object, ...]]]:
    taken = {h.casefold() for h in validation.sheet.headers}
    extra = tuple(f"{h} (m365batch)" if h.casefold() in taken else h for h in ROW_COLUMNS)
    headers = tuple(validation.sheet.headers) + extra
    width = len(validation.sheet.headers)
    table = []
    named = part_namer(names)
    for row in rows:
        outcome = outcomes[row.row]
        values = tuple(row.request.values) + ("",) * (width - len(row.request.values))
        table.append(
            (
                *values[:width],
                row.row,
                outcome.status,
                named(outcome.added),
                named(outcome.removed),
                named(name_ids(outcome.detail)),
                outcome.error_code,
                outcome.request_id,
                yes_no(outcome.verified),
                named(outcome.licenses_after),
            )
        )
    return headers, table


LICENSE_HEADERS = (
    "SKU",
    "Product",
    "Purchased",
    "Warning",
    "Suspended",
    "LockedOut",
    "Assigned before",
    "Free before",
    "Assigned after",
    "Free after",
    "SkuId",
)


def seat_line(before: SkuSeats, assigned_after: int, free_after: int) -> tuple[object, ...]:
    """One line of the Licenses sheet: a SKU's seats before, and assigned/free after."""
    return (
        before.part_number,
        product_name(before.sku_id) or before.part_number,
        before.enabled,
        before.warning,
        before.suspended,
        before.locked_out,
        before.consumed,
        before.free,
        assigned_after,
        free_after,
        before.sku_id,
    )


def add_licenses_sheet(
    book: PrintedWorkbook,
    lines: Sequence[Sequence[object]],
    *,
    summary: Any,
    chart_at: str,
    title: str,
) -> None:
    """The Licenses sheet (:data:`LICENSE_HEADERS`) and its chart, by product, on the Summary."""
    table = book.add_table(
        "Licenses",
        LICENSE_HEADERS,
        lines,
        kinds={h: "int" for h in LICENSE_HEADERS[2:-1]},
        status_column=None,
    )
    book.add_bar_chart(
        table,
        category_column=LICENSE_HEADERS.index("Product"),
        value_columns=[
            LICENSE_HEADERS.index("Assigned after"),
            LICENSE_HEADERS.index("Free after"),
        ],
        title=title,
        on_sheet=summary,
        at=chart_at,
        headers=LICENSE_HEADERS,
        stacked=True,
    )


def _seat_lines(plan: Plan, after: Mapping[str, SkuSeats] | None) -> list[tuple[object, ...]]:
    """Seats before (as planned from) and after (read back, else as forecast)."""
    lines = []
    for seat in plan.seats:
        now = after.get(seat.sku_id) if after is not None else None
        lines.append(
            seat_line(
                seat.before,
                now.consumed if now else seat.consumed_after,
                now.free if now else seat.free_after,
            )
        )
    return lines
