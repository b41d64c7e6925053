"""Onboarding, the undo sheet: the inverse of a run, written as an ordinary input sheet.

The users' licenses, plans, usage location and groups as they were before the run; planned
and applied like any sheet (see :mod:`batch.jobs.undo`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from batch.errors import JournalError
from batch.reports.workbook import output_path
from batch.run.history import GROUP_ASSIGN, done_ops, report_place
from batch.run.journal import JournalOp, runs_dir
from batch.run.plan import PlannedOp

__all__ = ["UNDO_HEADERS", "report_beside", "write_undo_sheet"]

UNDO_HEADERS = (
    "UserPrincipalName",
    "AddLicenses",
    "RemoveLicenses",
    "DisabledPlans",
    "UsageLocation",
    "Groups",
    "RemoveGroups",
)


def write_undo_sheet(home: Path, run_id: str, names: Mapping[str, str]) -> Path:
    """The inverse of a run as an input sheet: each touched user as they were before.

    Licenses the run added are removed, licenses it removed come back with the disabled
    plans they had, changed plans are set back, groups joined are left and groups left are
    joined again. Users the run did not change successfully are not touched. A run whose
    journal lists ``parts`` (a migration's waves, each a run of its own) is undone whole.
    Group license changes (``groupAssignLicense``) are left out: see
    :func:`batch.jobs.migrate.switch.undo_group_changes`.
    """
    # a group's license is undone apart, in two steps
    ops = [op for op in done_ops(home, run_id) if op.payload.get("kind") != GROUP_ASSIGN]
    if not ops:
        raise JournalError(f"Run {run_id} changed nothing: there is nothing to undo.")
    per_user = _inverse(ops)
    path = runs_dir(home) / run_id / f"undo-of-{run_id}.csv"
    with os.fdopen(
        os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
        "w",
        encoding="utf-8",
        newline="",
    ) as handle:
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


def report_beside(home: Path, run_id: str, kind: str) -> Path:
    """A new report's path next to run ``run_id``'s report (or input), else in this folder."""
    place = report_place(home, run_id)
    if place is None:
        return output_path(kind).resolve()
    folder, source = place
    return output_path(kind, input_path=source, directory=folder)


def _inverse(ops: list[JournalOp]) -> dict[str, dict[str, Any]]:
    """Per user, what puts them back: licenses to add (with plans) and remove, groups."""
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
    return per_user
