"""Onboarding, ``resume``: continue an interrupted run from its journal.

``resume`` re-reads the same input (refused if it changed), plans again from the tenant's
current state, and sends only what is still needed: an operation whose outcome was unknown
is therefore always checked against the tenant before it is sent again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from batch.config import Settings
from batch.graph.client import GraphClient
from batch.graph.engine import EngineSettings
from batch.jobs.onboarding.context import Progress, RunContext, RunResult, preflight
from batch.jobs.onboarding.execute import run_prepared
from batch.jobs.onboarding.options import RunOptions
from batch.jobs.onboarding.prepare import Prepared, prepare
from batch.run.history import resuming

__all__ = ["Confirm", "resume"]


#: shown what is left to write (and the later runs it may undo) before anything is sent;
#: raises to stop
Confirm = Callable[[str, Prepared, list[str]], None]


def resume(
    client: GraphClient,
    settings: Settings,
    run_id: str | None,
    *,
    output: Path | None = None,
    engine: EngineSettings | None = None,
    on_progress: Progress | None = None,
    verify_wait: float | None = None,
    confirm: Confirm | None = None,
) -> RunResult:
    """Continue an interrupted run from its journal, re-planning from the tenant's state.

    ``verify_wait`` overrides the read-back wait the run was started with. ``confirm`` is
    called with the run id, the plan of what is left and the finished runs on the same
    tenant that started after this one (a resume may undo their work).
    """
    with resuming(client, settings.home, run_id, settings.tenant_id) as (journal, later):
        options = RunOptions.from_meta(journal.get("options") or {})
        if verify_wait is not None:
            options = replace(options, verify_wait=verify_wait)
        prepared = prepare(client, Path(str(journal.get("input_path"))), options)
        if confirm is not None:
            confirm(journal.run_id, prepared, later)
        journal.add_ops((op.key, op.row, op.as_dict()) for op in prepared.plan.ops)
        ctx = RunContext(
            client,
            settings,
            journal,
            kind=str(journal.get("kind")),
            output=output,
            resumed=True,
            engine=engine,
            on_progress=on_progress,
        )
        if output is None and journal.get("output"):
            # the run's own report, perhaps written before the interruption: replace it
            ctx.output, ctx.overwrite = Path(str(journal.get("output"))), True
        preflight(settings.home, prepared.path, ctx.output, overwrite=ctx.overwrite)
        return run_prepared(ctx, prepared)
