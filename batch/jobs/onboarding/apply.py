"""Onboarding, ``apply``: execute a prepared plan under a new journal and the tenant lock.

prepared plan -> journal -> execute -> read back -> report
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from batch.config import Settings
from batch.graph.client import GraphClient
from batch.graph.engine import EngineSettings
from batch.jobs.onboarding.context import (
    Progress,
    RunContext,
    RunResult,
    preflight,
    require_rows,
)
from batch.jobs.onboarding.execute import run_prepared
from batch.jobs.onboarding.options import RunOptions
from batch.jobs.onboarding.prepare import Prepared, prepare
from batch.run.journal import Journal, tenant_lock

__all__ = ["apply", "apply_written_sheet"]


def apply(
    client: GraphClient,
    settings: Settings,
    prepared: Prepared,
    *,
    kind: str = "apply",
    output: Path | None = None,
    engine: EngineSettings | None = None,
    on_progress: Progress | None = None,
    meta: Mapping[str, Any] | None = None,
) -> RunResult:
    """Execute a prepared plan under a new journal; read back; write the report.

    :param kind: the run's kind in the journal and the report (``apply``, ``undo``, ...).
    :param meta: more values for the journal (what the run is part of, what it undoes).
    """
    require_rows(prepared.path, len(prepared.plan.rows))
    # nothing may be written to the tenant that the run cannot record and report
    preflight(settings.home, prepared.path, output)
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
    with journal, tenant_lock(settings.home, str(settings.tenant_id), journal.run_id):
        journal.add_ops((op.key, op.row, op.as_dict()) for op in prepared.plan.ops)
        ctx = RunContext(
            client,
            settings,
            journal,
            kind=kind,
            output=output,
            engine=engine,
            on_progress=on_progress,
        )
        return run_prepared(ctx, prepared)


def apply_written_sheet(
    client: GraphClient,
    settings: Settings,
    path: Path,
    *,
    kind: str,
    output: Path | None = None,
    on_progress: Progress | None = None,
    meta: Mapping[str, Any] | None = None,
) -> RunResult:
    """Plan and apply a sheet a job wrote itself (a migration's wave), without asking.

    Such a sheet says exactly what each user gets: its plans are set as written
    (``exact_plans``) and disabled accounts are changed too.
    """
    prepared = prepare(client, path, RunOptions(exact_plans=True, include_disabled=True))
    return apply(
        client, settings, prepared, kind=kind, output=output, on_progress=on_progress, meta=meta
    )
