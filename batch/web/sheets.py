"""The web app's sheets: checking one (validate and plan), its plan workbook, a template.

The same library calls as ``m365batch plan`` and ``m365batch template``: the page shows the
plan the command line would print, and the workbooks are the ones it writes.
"""

from __future__ import annotations

import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

from batch.config import Settings
from batch.graph.client import GraphClient
from batch.jobs import onboarding
from batch.jobs.checks import write_tenant_template

__all__ = ["check_sheet", "plan_workbook", "tenant_template"]


def check_sheet(settings: Settings, path: Path) -> dict[str, Any]:
    """Read, validate and plan a sheet against the tenant: what the check page shows."""
    with closing(GraphClient(settings)) as client:
        prepared = onboarding.prepare(client, path, onboarding.RunOptions())
    plan = prepared.plan
    return {
        "summary": prepared.summary_lines(),
        "writes": len(plan.ops),
        "removals": plan.removals,
        "counts": {str(k): v for k, v in sorted(plan.counts().items())},
        "problems": [
            {
                "row": f.row,
                "column": f.column,
                "value": f.value,
                "message": f.message,
                "severity": str(f.severity),
            }
            for f in prepared.validation.findings
        ],
        "rows": [
            {
                "row": r.row,
                "user": r.request.user,
                "status": str(r.status),
                "added": ", ".join(r.added),
                "removed": ", ".join(r.removed),
                "detail": r.detail,
            }
            for r in plan.rows
        ],
        "seats": [
            {
                "sku": s.part_number,
                "before": s.free_before,
                "after": s.free_after,
                "taken": s.taken,
                "freed": s.freed,
                "shortfall": s.shortfall,
            }
            for s in plan.seats
            if s.taken or s.freed or s.shortfall
        ],
    }


def plan_workbook(settings: Settings, path: Path, output: Path) -> Path:
    """The plan of a sheet as ``m365batch plan`` writes it, against the tenant as it is now."""
    with closing(GraphClient(settings)) as client:
        prepared = onboarding.prepare(client, path, onboarding.RunOptions())
    output.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    output.unlink(missing_ok=True)
    return onboarding.write_plan_report(prepared, settings.describe(), output)


def tenant_template(settings: Settings, folder: Path) -> Path:
    """The input template ``m365batch template`` writes, with the tenant's SKUs as dropdowns."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    output = folder / f"template-{uuid.uuid4().hex[:8]}.xlsx"
    with closing(GraphClient(settings)) as client:
        return write_tenant_template(client, output, as_csv=False)
