"""Onboarding, the run: send what is still to send, read back, report; under the tenant lock.

    (journal -> execute) -> read back -> report

Used by ``apply`` (a new journal) and ``resume`` (the run's own journal, planned again from
the tenant's state): either way only what the journal does not show as done is sent.
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from batch.crashpoints import crashpoint
from batch.errors import BatchError, ReportError
from batch.jobs.onboarding.context import RunContext, RunResult, exit_code_for
from batch.jobs.onboarding.earlyread import write
from batch.jobs.onboarding.outcomes import (
    change_lines,
    engine_counters,
    read_back,
    row_outcomes,
    sent_rows,
)
from batch.jobs.onboarding.prepare import Prepared
from batch.jobs.onboarding.report import read_seats, write_run_workbook
from batch.run.journal import FINISHED, INTERRUPTED, RUNNING, RunInterrupted

__all__ = ["run_prepared"]

log = logging.getLogger(__name__)

RESUMED_NOTE = "Resumed from the journal: the plan was made again from the tenant's state."


def run_prepared(ctx: RunContext, prepared: Prepared) -> RunResult:
    """Run a prepared plan whose operations are in ``ctx.journal``; raise what stopped it.

    The caller holds :func:`batch.run.journal.tenant_lock` (and with it the run's lock).
    A :class:`BatchError` that stops the writes (breaker, permissions) is raised only after
    the read-back and the report, so that the report says how far the run got.
    """
    journal = ctx.journal
    journal.set(state=RUNNING)
    try:
        result, stop = _execute_and_report(ctx, prepared)
    except KeyboardInterrupt:
        # whenever it comes (writes, read-back, report), resume takes the run up again
        journal.finish(INTERRUPTED)
        raise RunInterrupted(journal.run_id) from None
    if stop is not None:
        raise stop
    return result


def _changes_groups(prepared: Prepared) -> bool:
    """Whether the plan joins or leaves groups (licenses Entra then assigns in the background)."""
    return any(row.request.join_groups or row.request.leave_groups for row in prepared.plan.rows)


def _unreported(ctx: RunContext, counts: Counter[str], exc: Exception) -> ReportError:
    """The run wrote to the tenant but its report failed: it stays resumable to write it."""
    run_id = ctx.journal.run_id
    ctx.journal.set(state=INTERRUPTED, report_error=str(exc))
    written = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return ReportError(
        f"Run {run_id} made its changes ({written}; see `m365batch runs`), "
        f"but its report could not be written: {reason}.",
        hint=f"`m365batch resume {run_id} --output NEW.xlsx` writes the report "
        "(nothing is sent again).",
    )


def _execute_and_report(ctx: RunContext, prepared: Prepared) -> tuple[RunResult, BatchError | None]:
    """Send what is still to send, read back, write the report; the error that stopped it."""
    journal = ctx.journal
    planned_keys = {op.key for op in prepared.plan.ops}
    written = write(ctx, prepared)
    stop, stats = written.stop, written.stats
    crashpoint("readback")
    journal_ops = list(journal.ops())
    outcomes = row_outcomes(prepared, journal_ops, planned_keys, stopped=stop is not None)
    log.info("phase: read-back started (%d rows)", len(prepared.plan.rows))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="report") as pool:
        # the report's seats, read while the rows are: unless group licensing is still
        # being processed (the read-back waits for it, and with it for the seats it takes)
        seats_read = None if _changes_groups(prepared) else pool.submit(read_seats, ctx.client)
        readback = read_back(
            ctx.client,
            prepared,
            outcomes,
            stopped=stop is not None,
            sent=sent_rows(journal_ops) - written.rows,
            early=written.users,
        )
        log.info("phase: read-back finished (waited %.1f s)", readback.waited)
        seats_now = seats_read.result() if seats_read is not None else None
    counters = engine_counters(stats)
    counters["Read-back waited (s)"] = readback.waited
    counters["Rows re-read (not yet as asked)"] = readback.reread_rows
    notes = [f"Stopped: {stop}"] if stop else []
    if ctx.resumed:
        notes.append(RESUMED_NOTE)
    changes = change_lines(journal_ops)
    counts: Counter[str] = Counter(o.status for o in outcomes.values())
    log.info("phase: report started")
    try:
        report = write_run_workbook(
            ctx, prepared, outcomes, changes, counters=counters, notes=notes, seats_now=seats_now
        )
    except (ReportError, OSError) as exc:
        raise _unreported(ctx, counts, exc) from exc
    log.info("phase: report written (%s)", report.name)
    if stop is None:
        journal.finish(FINISHED, report=str(report), counts=dict(counts))
    else:
        journal.set(report=str(report), state=INTERRUPTED)
    result = RunResult(
        journal.run_id, report, counts, exit_code_for(counts), notes, counters, outcomes, changes
    )
    return result, stop
