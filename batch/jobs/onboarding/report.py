"""Onboarding, the report: the plan workbook of ``plan`` and the run workbook of ``apply``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

from batch.jobs.onboarding.context import RunContext
from batch.jobs.onboarding.options import option_lines
from batch.jobs.onboarding.prepare import Prepared
from batch.reports.run import ChangeLine, RowOutcome, RunFacts, plan_outcomes, write_run_report
from batch.reports.workbook import output_path
from batch.run.tenant import SkuSeats, read_seats

__all__ = ["read_seats", "write_plan_report", "write_run_workbook"]


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
        options=option_lines(prepared.options),
    )
    return write_run_report(
        path,
        facts=facts,
        validation=prepared.validation,
        plan=prepared.plan,
        outcomes=plan_outcomes(prepared.plan),
    )


def write_run_workbook(
    ctx: RunContext,
    prepared: Prepared,
    outcomes: Mapping[int, RowOutcome],
    changes: Sequence[ChangeLine],
    *,
    counters: Mapping[str, float],
    notes: Sequence[str],
    seats_now: Sequence[SkuSeats] | None = None,
) -> Path:
    """The run's workbook, with the seats as the tenant has them now (read here unless
    ``seats_now`` was read already, after the writes)."""
    if seats_now is None:
        seats_now = read_seats(ctx.client)
    facts = RunFacts(
        tenant=ctx.settings.describe(),
        mode=ctx.kind,
        run_id=ctx.journal.run_id,
        input_path=prepared.path,
        input_sha256=prepared.sha256,
        started=prepared.started,
        finished=dt.datetime.now(),
        options=option_lines(prepared.options),
        counters=counters,
        notes=notes,
    )
    return write_run_report(
        ctx.output or output_path(ctx.kind, input_path=prepared.path),
        facts=facts,
        validation=prepared.validation,
        plan=prepared.plan,
        outcomes=outcomes,
        seats_after=list(seats_now),
        changes=changes,
        overwrite=ctx.overwrite,
    )
