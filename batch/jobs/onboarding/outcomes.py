"""Onboarding, the outcome: each row's final line from the plan, the journal and the tenant.

The journal spans every process of a run (a resumed run included), so a row's status comes
from its journaled operations, then the read-back says whether the tenant shows it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from batch.graph.client import GraphClient
from batch.graph.engine import EngineStats
from batch.jobs.onboarding.prepare import Prepared
from batch.reports.run import ChangeLine, RowOutcome, plan_outcomes
from batch.run.execute import result_ok
from batch.run.journal import JournalOp
from batch.run.reconcile import ReadBackResult, UserState, reconcile_rows
from batch.status import RowStatus

__all__ = ["change_lines", "engine_counters", "read_back", "row_outcomes", "sent_rows"]

NOT_SENT = "not sent: the run stopped; `m365batch resume` continues"
NOT_CONFIRMED = "outcome not confirmed; `m365batch resume` checks and continues"


def row_outcomes(
    prepared: Prepared, journal_ops: Sequence[JournalOp], planned_keys: set[str], *, stopped: bool
) -> dict[int, RowOutcome]:
    """Each row's final status from the plan and the journal (which spans every process)."""
    outcomes = plan_outcomes(prepared.plan)
    by_row: dict[int, list[JournalOp]] = {}
    for op in journal_ops:
        if op.row is not None:
            by_row.setdefault(op.row, []).append(op)
    for row in prepared.plan.rows:
        outcome = outcomes[row.row]
        ops = by_row.get(row.row, [])
        if not [op for op in ops if op.state != "planned" or op.attempts]:
            if outcome.status == RowStatus.PLANNED:  # planned but never sent: the run stopped
                _add_detail(outcome, NOT_SENT)
            continue
        failed = [op for op in ops if op.state == "done" and not result_ok(op.result or {})]
        open_ops = [op for op in ops if op.state != "done" and op.key in planned_keys]
        if failed:
            result = failed[0].result or {}
            outcome.status = RowStatus.FAILED
            outcome.error_code = str(result.get("code") or result.get("outcome") or "")
            outcome.request_id = str(result.get("request_id") or "")
            _add_detail(outcome, str(result.get("message") or ""))
        elif open_ops:
            outcome.status = RowStatus.PLANNED if stopped else RowStatus.FAILED
            _add_detail(outcome, NOT_CONFIRMED)
        else:
            outcome.status = RowStatus.APPLIED
            last = [op.result for op in ops if op.result]
            if last:
                outcome.request_id = str(last[-1].get("request_id") or "")
            if not outcome.added and not outcome.removed:
                outcome.added, outcome.removed = _added_removed(ops, prepared.names)
    return outcomes


def read_back(
    client: GraphClient,
    prepared: Prepared,
    outcomes: Mapping[int, RowOutcome],
    *,
    stopped: bool,
    sent: Collection[int] | None = None,
    early: Mapping[str, UserState] | None = None,
) -> ReadBackResult:
    """Read the rows back from the tenant and put what it shows on their outcomes.

    With ``sent`` (the rows a write was sent for and not read back ``early``, while the
    writes went on), only those rows' users are read again; the others are as the plan
    found them, or as read early. A stopped run does not wait for the tenant:
    what it shows now is what the report says.
    """
    options = prepared.options
    readback = reconcile_rows(
        client,
        prepared.plan,
        options.plan_options,
        names=prepared.names,
        wait_for_groups=0 if stopped else options.wait_for_groups,
        written={row for row, o in outcomes.items() if o.status == RowStatus.APPLIED},
        verify_wait=0 if stopped else options.verify_wait,
        known={**prepared.users, **(early or {})} if sent is not None else None,
        sent=sent,
        group_names=prepared.group_names,
    )
    for row, back in readback.rows.items():
        outcome = outcomes[row]
        outcome.verified = back.verified
        outcome.licenses_after = back.licenses_after
        if back.problems and outcome.status in (RowStatus.APPLIED, RowStatus.NO_CHANGE):
            outcome.detail = "; ".join(filter(None, [outcome.detail, *back.problems]))
    return readback


def _add_detail(outcome: RowOutcome, text: str) -> None:
    outcome.detail = "; ".join(filter(None, [outcome.detail, text]))


def _added_removed(ops: Sequence[JournalOp], names: Mapping[str, str]) -> tuple[str, str]:
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


def sent_rows(journal_ops: Sequence[JournalOp]) -> set[int]:
    """The rows at least one of whose journaled writes was sent (in any process of the run)."""
    return {
        op.row
        for op in journal_ops
        if op.row is not None and (op.state != "planned" or op.attempts)
    }


def change_lines(journal_ops: Sequence[JournalOp]) -> list[ChangeLine]:
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


def engine_counters(stats: Sequence[EngineStats]) -> dict[str, float]:
    """The engine's figures summed over the run's waves, as the Summary sheet names them."""
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
