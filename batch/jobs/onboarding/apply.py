"""Jobs: the pipeline end to end for ``plan``, ``apply``, ``resume`` and ``undo``.

    read -> validate -> read the tenant -> plan -> (journal -> execute) -> read back -> report

``prepare`` does everything up to the plan and writes nothing. ``apply`` executes a prepared
plan under a journal and the tenant lock, reads the tenant back and writes the report.
``resume`` re-reads the same input (refused if it changed), plans again from the tenant's
current state, and sends only what is still needed: an operation whose outcome was unknown
is therefore always checked against the tenant before it is sent again. ``undo`` writes the
inverse of a run as an ordinary sheet (the users' licenses, plans, usage location and
groups as they were before) and applies it like any run.

The removal guard: a run that would remove more than ``DEFAULT_MAX_REMOVALS`` licenses (or
the ``--max-removals`` given) is refused before anything is written, as Entra's own
provisioning guards do against accidental mass deletion.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from batch.config import Settings
from batch.crashpoints import crashpoint
from batch.errors import BatchError, ExitCode, GuardStopped, JournalError
from batch.graph.client import GraphClient
from batch.graph.engine import EngineSettings, EngineStats
from batch.intake.catalog import Catalog
from batch.intake.sources import read_sheet
from batch.intake.validate import ValidationResult, validate_sheet
from batch.reports.run import ChangeLine, RowOutcome, RunFacts, plan_outcomes, write_run_report
from batch.reports.workbook import output_path
from batch.run.execute import execute_plan, result_ok
from batch.run.journal import (
    FINISHED,
    INTERRUPTED,
    Journal,
    file_sha256,
    latest_unfinished,
    runs_dir,
    tenant_lock,
)
from batch.run.plan import (
    APPLIED,
    FAILED,
    NO_CHANGE,
    PLANNED,
    Plan,
    PlannedOp,
    PlanOptions,
    build_plan,
)
from batch.run.reconcile import DEFAULT_VERIFY_WAIT, reconcile_rows
from batch.run.tenant import SkuSeats, read_groups, read_seats, read_users, seats_from_skus

log = logging.getLogger(__name__)

#: licenses a run may remove without --max-removals
DEFAULT_MAX_REMOVALS = 100
_SETTLED = {"Invalid", "Failed", "Deferred"}


@dataclass(frozen=True)
class RunOptions:
    """Options that shape a run; kept in the journal so that resume plans the same way."""

    sheet: str | None = None
    as_of: dt.date | None = None
    exact: bool = False
    default_usage_location: str | None = None
    include_disabled: bool = False
    exact_plans: bool = False
    wait_for_groups: float = 120.0
    #: seconds the read-back may wait for written rows to read back as asked
    verify_wait: float = DEFAULT_VERIFY_WAIT

    @property
    def plan_options(self) -> PlanOptions:
        return PlanOptions(
            self.exact, self.default_usage_location, self.include_disabled, self.exact_plans
        )

    def as_meta(self) -> dict[str, Any]:
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat() if self.as_of else None
        return data

    @classmethod
    def from_meta(cls, data: Mapping[str, Any]) -> RunOptions:
        values = dict(data)
        if values.get("as_of"):
            values["as_of"] = dt.date.fromisoformat(values["as_of"])
        return cls(**values)


@dataclass
class Prepared:
    """A sheet read, validated and planned against the tenant: everything ``apply`` needs."""

    path: Path
    sha256: str
    validation: ValidationResult
    plan: Plan
    seats: list[SkuSeats]
    names: dict[str, str]  # sku id -> part number
    options: RunOptions
    started: dt.datetime = field(default_factory=dt.datetime.now)

    def summary_lines(self) -> list[str]:
        """What the admin sees before confirming: rows, writes and seats."""
        counts, ops = self.plan.counts(), self.plan.op_counts()
        lines = [
            f"Rows: {len(self.plan.rows)} ("
            + ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
            + ")",
            f"Users to change: {counts.get(PLANNED, 0)}; writes: {len(self.plan.ops)} ("
            + ", ".join(f"{kind} {n}" for kind, n in sorted(ops.items()))
            + ")",
            f"Licenses removed: {self.plan.removals}",
        ]
        for seat in self.plan.seats:
            if seat.taken or seat.freed or seat.shortfall:
                line = (
                    f"  {seat.part_number}: free {seat.free_before} -> {seat.free_after} "
                    f"(+{seat.freed} freed, -{seat.taken} taken)"
                )
                if seat.shortfall:
                    line += f"  SHORT by {seat.shortfall}: buy {seat.shortfall} more or drop rows"
                lines.append(line)
        return lines


@dataclass
class RunResult:
    """What a finished (or stopped) run reports back to the command line."""

    run_id: str
    report: Path
    counts: Counter[str]
    exit_code: ExitCode
    notes: list[str] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)
    #: each row's final line and the writes sent, for callers that build their own report
    outcomes: dict[int, RowOutcome] = field(default_factory=dict)
    changes: list[ChangeLine] = field(default_factory=list)


def prepare(client: GraphClient, path: Path, options: RunOptions) -> Prepared:
    """Read, validate and plan ``path`` against the tenant. Writes nothing anywhere."""
    sheet = read_sheet(path, sheet=options.sheet)
    skus = list(client.get_all("/subscribedSkus"))
    catalog = Catalog.load(skus)
    validation = validate_sheet(sheet, catalog, as_of=options.as_of)
    ready = [row for row in validation.rows if row.ready]
    users = read_users(client, [row.user for row in ready])
    group_names = {g for row in ready for g in (*row.join_groups, *row.leave_groups)}
    groups, problems = read_groups(client, group_names) if group_names else ({}, {})
    seats = seats_from_skus(skus)
    plan = build_plan(
        validation,
        seats=seats,
        users=users,
        groups=groups,
        group_problems=problems,
        options=options.plan_options,
        graph_url=client.graph_url,
    )
    return Prepared(
        path=path,
        sha256=sheet.sha256 if getattr(sheet, "sha256", None) else file_sha256(path),
        validation=validation,
        plan=plan,
        seats=seats,
        names={s.sku_id: s.part_number for s in seats},
        options=options,
    )


def check_removals(plan: Plan, max_removals: int | None) -> None:
    """Refuse a plan that removes more licenses than allowed (exit code 4)."""
    limit = DEFAULT_MAX_REMOVALS if max_removals is None else max_removals
    if plan.removals > limit:
        raise GuardStopped(
            f"The plan removes {plan.removals} licenses, more than the {limit} allowed.",
            hint=f"Check the sheet, then run again with --max-removals {plan.removals}.",
        )


def write_plan_report(prepared: Prepared, tenant: str, output: Path | None) -> Path:
    """The plan as a workbook: statuses Planned/NoChange/..., seats forecast, no Changes."""
    path = output or output_path("plan", input_path=prepared.path)
    facts = RunFacts(
        tenant=tenant,
        mode="plan",
        run_id="(plan only)",
        input_path=prepared.path,
        input_sha256=prepared.sha256,
        started=prepared.started,
        finished=dt.datetime.now(),
        options=_option_lines(prepared.options),
    )
    return write_run_report(
        path,
        facts=facts,
        validation=prepared.validation,
        plan=prepared.plan,
        outcomes=plan_outcomes(prepared.plan),
    )


def apply(
    client: GraphClient,
    settings: Settings,
    prepared: Prepared,
    *,
    kind: str = "apply",
    output: Path | None = None,
    engine: EngineSettings | None = None,
    on_progress: Callable[[EngineStats], None] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> RunResult:
    """Execute a prepared plan under a new journal; read back; write the report."""
    journal = Journal.create(
        settings.home,
        kind=kind,
        tenant=str(settings.tenant_id),
        input_path=prepared.path.resolve(),
        input_sha256=prepared.sha256,
        meta={
            "options": prepared.options.as_meta(),
            "tenant_label": settings.describe(),
            "output": str(output) if output else None,
            **(meta or {}),
        },
    )
    with journal:
        journal.add_ops((op.key, op.row, op.as_dict()) for op in prepared.plan.ops)
        return _run(
            client,
            settings,
            prepared,
            journal,
            kind=kind,
            output=output,
            engine=engine,
            on_progress=on_progress,
        )


def resume(
    client: GraphClient,
    settings: Settings,
    run_id: str | None,
    *,
    output: Path | None = None,
    engine: EngineSettings | None = None,
    on_progress: Callable[[EngineStats], None] | None = None,
    verify_wait: float | None = None,
) -> RunResult:
    """Continue an interrupted run from its journal, re-planning from the tenant's state.

    ``verify_wait`` overrides the read-back wait the run was started with.
    """
    run_id = run_id or latest_unfinished(settings.home)
    if run_id is None:
        raise JournalError("No unfinished run to resume.", hint="See `m365batch runs`.")
    with Journal.open(settings.home, run_id) as journal:
        if journal.get("state") == FINISHED:
            raise JournalError(
                f"Run {run_id} already finished.", hint="See its report, or `m365batch runs`."
            )
        if not journal.get("input_path"):
            raise JournalError(
                f"Run {run_id} ({journal.get('kind')}) has no input sheet to resume from.",
                hint="Run the command that started it again (e.g. `m365batch migrate --groups`): "
                "it reads the tenant's state and continues.",
            )
        if journal.get("tenant") != settings.tenant_id:
            raise JournalError(
                f"Run {run_id} was made on another tenant ({journal.get('tenant')})."
            )
        path = Path(str(journal.get("input_path")))
        if not path.is_file():
            raise JournalError(
                f"Run {run_id}: its input {path} is gone.", hint="Put the file back to resume."
            )
        if file_sha256(path) != journal.get("input_sha256"):
            raise JournalError(
                f"Run {run_id}: {path.name} changed since the run started.",
                hint="Resume needs the same file; to apply the new one, start a new run "
                "with `apply`.",
            )
        options = RunOptions.from_meta(journal.get("options") or {})
        if verify_wait is not None:
            options = replace(options, verify_wait=verify_wait)
        prepared = prepare(client, path, options)
        journal.add_ops((op.key, op.row, op.as_dict()) for op in prepared.plan.ops)
        kind = str(journal.get("kind"))
        overwrite = False
        if output is None and journal.get("output"):
            # the run's own report, perhaps written before the interruption: replace it
            output, overwrite = Path(str(journal.get("output"))), True
        return _run(
            client,
            settings,
            prepared,
            journal,
            kind=kind,
            output=output,
            engine=engine,
            on_progress=on_progress,
            resumed=True,
            overwrite=overwrite,
        )


def _run(
    client: GraphClient,
    settings: Settings,
    prepared: Prepared,
    journal: Journal,
    *,
    kind: str,
    output: Path | None,
    engine: EngineSettings | None,
    on_progress: Callable[[EngineStats], None] | None,
    resumed: bool = False,
    overwrite: bool = False,
) -> RunResult:
    with tenant_lock(settings.home, str(settings.tenant_id), journal.run_id):
        journal.set(state="running")
        try:
            result, stop = _execute_and_report(
                client,
                settings,
                prepared,
                journal,
                kind=kind,
                output=output,
                engine=engine,
                on_progress=on_progress,
                resumed=resumed,
                overwrite=overwrite,
            )
        except KeyboardInterrupt:
            # whenever it comes (writes, read-back, report), resume takes the run up again
            journal.finish(INTERRUPTED)
            raise
    if stop is not None:
        raise stop
    return result


def _execute_and_report(
    client: GraphClient,
    settings: Settings,
    prepared: Prepared,
    journal: Journal,
    *,
    kind: str,
    output: Path | None,
    engine: EngineSettings | None,
    on_progress: Callable[[EngineStats], None] | None,
    resumed: bool,
    overwrite: bool,
) -> tuple[RunResult, BatchError | None]:
    """Send what is still to send, read back, write the report; the error that stopped it."""
    stop: BatchError | None = None
    stats: list[EngineStats] = []
    planned_keys = {op.key for op in prepared.plan.ops}
    try:
        _, stats = execute_plan(
            client, prepared.plan.ops, journal, settings=engine, on_progress=on_progress
        )
    except BatchError as exc:  # breaker, permissions: report what happened, then stop
        journal.set(stop_reason=str(exc))
        stop = exc
    crashpoint("readback")
    journal_ops = list(journal.ops())
    outcomes = _outcomes(prepared, journal_ops, planned_keys, stopped=stop is not None)
    readback = reconcile_rows(
        client,
        prepared.plan,
        prepared.options.plan_options,
        names=prepared.names,
        wait_for_groups=0 if stop else prepared.options.wait_for_groups,
        written={row for row, outcome in outcomes.items() if outcome.status == APPLIED},
        verify_wait=0 if stop else prepared.options.verify_wait,
    )
    for row, back in readback.rows.items():
        outcome = outcomes[row]
        outcome.verified = "Yes" if back.verified else "No"
        outcome.licenses_after = back.licenses_after
        if back.problems and outcome.status in (APPLIED, NO_CHANGE):
            outcome.detail = "; ".join(filter(None, [outcome.detail, *back.problems]))
    seats_now = read_seats(client)
    path = output or output_path(kind, input_path=prepared.path)
    counters = _counters(stats)
    counters["Read-back waited (s)"] = readback.waited
    counters["Rows re-read (not yet as asked)"] = readback.reread_rows
    notes = [f"Stopped: {stop}"] if stop else []
    if resumed:
        notes.append("Resumed from the journal: the plan was made again from the tenant's state.")
    facts = RunFacts(
        tenant=settings.describe(),
        mode=kind,
        run_id=journal.run_id,
        input_path=prepared.path,
        input_sha256=prepared.sha256,
        started=prepared.started,
        finished=dt.datetime.now(),
        options=_option_lines(prepared.options),
        counters=counters,
        notes=notes,
    )
    changes = change_lines(journal_ops)
    report = write_run_report(
        path,
        facts=facts,
        validation=prepared.validation,
        plan=prepared.plan,
        outcomes=outcomes,
        seats_after=seats_now,
        changes=changes,
        overwrite=overwrite,
    )
    counts = Counter(o.status for o in outcomes.values())
    if stop is None:
        journal.finish(FINISHED, report=str(report), counts=dict(counts))
    else:
        journal.set(report=str(report), state=INTERRUPTED)
    exit_code = ExitCode.ROWS_FAILED if any(counts.get(s) for s in _SETTLED) else ExitCode.SUCCESS
    result = RunResult(
        journal.run_id, report, counts, exit_code, notes, counters, outcomes, changes
    )
    return result, stop


def _outcomes(
    prepared: Prepared, journal_ops: list[Any], planned_keys: set[str], *, stopped: bool
) -> dict[int, RowOutcome]:
    """Each row's final status from the plan and the journal (which spans every process)."""
    outcomes = plan_outcomes(prepared.plan)
    by_row: dict[int, list[Any]] = {}
    for op in journal_ops:
        if op.row is not None:
            by_row.setdefault(op.row, []).append(op)
    for row in prepared.plan.rows:
        outcome = outcomes[row.row]
        ops = by_row.get(row.row, [])
        sent = [op for op in ops if op.state != "planned" or op.attempts]
        if not sent:
            if outcome.status == PLANNED:  # planned but never sent: the run stopped first
                outcome.detail = "; ".join(
                    filter(
                        None,
                        [outcome.detail, "not sent: the run stopped; `m365batch resume` continues"],
                    )
                )
            continue
        failed = [op for op in ops if op.state == "done" and not result_ok(op.result or {})]
        open_ops = [op for op in ops if op.state != "done" and op.key in planned_keys]
        if failed:
            result = failed[0].result or {}
            outcome.status = FAILED
            outcome.error_code = str(result.get("code") or result.get("outcome") or "")
            outcome.request_id = str(result.get("request_id") or "")
            outcome.detail = "; ".join(
                filter(None, [outcome.detail, str(result.get("message") or "")])
            )
        elif open_ops:
            outcome.status = PLANNED if stopped else FAILED
            outcome.detail = "; ".join(
                filter(
                    None,
                    [
                        outcome.detail,
                        "outcome not confirmed; `m365batch resume` checks and continues",
                    ],
                )
            )
        else:
            outcome.status = APPLIED
            last = [op.result for op in ops if op.result]
            if last:
                outcome.request_id = str(last[-1].get("request_id") or "")
            if not outcome.added and not outcome.removed:
                outcome.added, outcome.removed = _added_removed(ops, prepared.names)
    return outcomes


def _added_removed(ops: list[Any], names: Mapping[str, str]) -> tuple[str, str]:
    """Added/Removed from the journaled bodies (a resumed row no longer has them in its plan)."""
    added, removed = [], []
    for op in ops:
        body = op.payload.get("body") or {}
        if op.payload.get("kind") == "assignLicense":
            before = op.payload.get("before", {}).get("licenses", {})
            added += [
                names.get(a["skuId"], a["skuId"])
                for a in body.get("addLicenses") or []
                if a["skuId"] not in before
            ]
            removed += [names.get(s, s) for s in body.get("removeLicenses") or []]
    return ", ".join(added), ", ".join(removed)


def change_lines(journal_ops: list[Any]) -> list[ChangeLine]:
    """The report's Changes lines for journaled operations (those sent at least once)."""
    lines = []
    for op in journal_ops:
        if op.state == "planned" and not op.attempts:
            continue
        result = op.result or {}
        error = ": ".join(str(x) for x in (result.get("code"), result.get("message")) if x)
        lines.append(
            ChangeLine(
                time=(op.done_at or op.sent_at or "")[:19].replace("T", " "),
                row=op.row or 0,
                user=str(op.payload.get("upn") or ""),
                operation=str(op.payload.get("kind") or ""),
                summary=str(op.payload.get("summary") or ""),
                outcome=str(
                    result.get("outcome")
                    or ("sent, outcome unknown" if op.state == "sent" else op.state)
                ),
                status=result.get("status"),
                error=error,
                attempts=op.attempts,
                request_id=str(result.get("request_id") or ""),
            )
        )
    return lines


def _counters(stats: list[EngineStats]) -> dict[str, float]:
    total: dict[str, float] = dict.fromkeys(
        (
            "Requests sent ($batch)",
            "Writes sent",
            "Throttled answers (429)",
            "Retries",
            "Read-backs after unknown outcomes",
            "Resource units",
            "Seconds writing",
        ),
        0,
    )
    for s in stats:
        total["Requests sent ($batch)"] += s.requests
        total["Writes sent"] += s.items_sent
        total["Throttled answers (429)"] += s.throttled_items
        total["Retries"] += s.retries
        total["Read-backs after unknown outcomes"] += s.verifications
        total["Resource units"] += s.resource_units
        total["Seconds writing"] += round(s.elapsed, 1)
    return total


def _option_lines(options: RunOptions) -> dict[str, object]:
    return {
        "exact": options.exact,
        "default usage location": options.default_usage_location,
        "include disabled accounts": options.include_disabled,
        "as of": (options.as_of or dt.date.today()).isoformat(),
        "verify wait (s)": options.verify_wait,
    }


# -- undo -------------------------------------------------------------------------------

UNDO_HEADERS = (
    "UserPrincipalName",
    "AddLicenses",
    "RemoveLicenses",
    "DisabledPlans",
    "UsageLocation",
    "Groups",
    "RemoveGroups",
)


#: the PlannedOp kind of a group's assignLicense (group-based licensing)
GROUP_ASSIGN = "groupAssignLicense"


def done_ops(home: Path, run_id: str) -> list[Any]:
    """The journaled operations a run (and its ``parts``) carried out successfully."""
    with Journal.open(home, run_id) as journal:
        ops = [op for op in journal.ops("done") if result_ok(op.result or {})]
        parts = [str(p) for p in journal.get("parts") or []]
    for part in parts:
        with Journal.open(home, part) as journal:
            ops += [op for op in journal.ops("done") if result_ok(op.result or {})]
    return ops


def changed_kinds(home: Path, run_id: str) -> set[str]:
    """The kinds of the writes a run (and its parts) carried out: tells undo what to revert."""
    return {str(op.payload.get("kind")) for op in done_ops(home, run_id)}


def write_undo_sheet(home: Path, run_id: str, names: Mapping[str, str]) -> Path:
    """The inverse of a run as an input sheet: each touched user as they were before.

    Licenses the run added are removed, licenses it removed come back with the disabled
    plans they had, changed plans are set back, groups joined are left and groups left are
    joined again. Users the run did not change successfully are not touched. A run whose
    journal lists ``parts`` (a migration's waves, each a run of its own) is undone whole.
    Group license changes (``groupAssignLicense``) are left out: see
    :func:`batch.jobs.migrate.groups.undo_group_changes`.
    """
    # a group's license is undone apart, in two steps
    ops = [op for op in done_ops(home, run_id) if op.payload.get("kind") != GROUP_ASSIGN]
    if not ops:
        raise JournalError(f"Run {run_id} changed nothing: there is nothing to undo.")
    folder = runs_dir(home) / run_id
    per_user: dict[str, dict[str, Any]] = {}
    for op in ops:
        planned = PlannedOp.from_dict(op.payload)
        user = per_user.setdefault(
            planned.upn,
            {"add": {}, "remove": set(), "location": None, "join": set(), "leave": set()},
        )
        before = planned.before or {}
        if planned.kind == "assignLicense":
            held = before.get("licenses", {})
            for added in planned.body.get("addLicenses") or []:
                sku = added["skuId"]
                if sku in held:
                    user["add"][sku] = held[sku]  # plans changed: set them back
                else:
                    user["remove"].add(sku)
            for sku in planned.body.get("removeLicenses") or []:
                user["add"][sku] = held.get(sku, [])
        changed_location = planned.usage_location or planned.kind == "usageLocation"
        if changed_location and before.get("usageLocation"):
            user["location"] = before["usageLocation"]
        if planned.kind == "joinGroup":
            user["leave"].add(before["group"])
        if planned.kind == "leaveGroup":
            user["join"].add(before["group"])
    path = folder / f"undo-of-{run_id}.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(UNDO_HEADERS)
        for upn, change in per_user.items():
            plans = [
                f"{names.get(sku, sku)}:{plan}" for sku, ps in change["add"].items() for plan in ps
            ]
            writer.writerow(
                [
                    upn,
                    ";".join(change["add"]),
                    ";".join(sorted(change["remove"])),
                    ";".join(plans),
                    change["location"] or "",
                    ";".join(sorted(change["join"])),
                    ";".join(sorted(change["leave"])),
                ]
            )
    return path
