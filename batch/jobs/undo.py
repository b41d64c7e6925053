"""Undo: revert what a run changed, planned and applied like any run.

    run's journal (and its parts) -> licensed groups back, in two steps ->
    undo sheet (the users as they were) -> prepare -> confirm -> apply

Licensed groups a migration switched get their old license back first
(:func:`batch.jobs.migrate.switch.undo_group_changes`); then the users' own changes are
written as an ordinary sheet in the run's folder (:mod:`batch.jobs.onboarding.undo`) and
applied with exact plans, disabled accounts included. The undo's report goes next to the
undone run's report (where people look), and its path is journaled, so that a resumed undo
replaces that report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from batch.config import Settings
from batch.graph.client import GraphClient
from batch.jobs.migrate.switch import GroupSwitch, undo_group_changes
from batch.jobs.onboarding import Prepared, Progress, RunOptions, RunResult, apply, prepare
from batch.jobs.onboarding.undo import report_beside, write_undo_sheet
from batch.run.history import GROUP_ASSIGN, changed_kinds, settle_run
from batch.run.tenant import read_seats

__all__ = ["UndoScope", "apply_undo", "prepare_undo", "undo_groups", "undo_scope"]


@dataclass(frozen=True)
class UndoScope:
    """What a run changed, so what its undo reverts."""

    #: licensed groups' licenses (a migration with ``--groups``)
    groups: bool
    #: anything else: users' licenses, plans, usage location, groups joined or left
    users: bool


def undo_scope(client: GraphClient, settings: Settings, run_id: str) -> UndoScope:
    """What run ``run_id`` (and its parts) carried out, once its lost answers are settled.

    An operation whose answer was lost is settled first by reading the tenant: undo is
    computed from what the run is known to have done, and refused while anything is unknown.
    """
    settle_run(client, settings.home, str(settings.tenant_id), run_id)
    kinds = changed_kinds(settings.home, run_id)
    return UndoScope(groups=GROUP_ASSIGN in kinds, users=bool(kinds - {GROUP_ASSIGN}))


def undo_groups(client: GraphClient, settings: Settings, run_id: str) -> list[GroupSwitch]:
    """Put back the licenses of the groups the run switched, in two steps."""
    return undo_group_changes(client, settings, run_id)


def prepare_undo(client: GraphClient, settings: Settings, run_id: str) -> tuple[Path, Prepared]:
    """Write the undo sheet of the run and plan it against the tenant; the sheet and plan."""
    names = {s.sku_id: s.part_number for s in read_seats(client)}
    sheet = write_undo_sheet(settings.home, run_id, names)
    return sheet, prepare(client, sheet, RunOptions(exact_plans=True, include_disabled=True))


def apply_undo(
    client: GraphClient,
    settings: Settings,
    run_id: str,
    prepared: Prepared,
    *,
    output: Path | None = None,
    on_progress: Progress | None = None,
) -> RunResult:
    """Apply a prepared undo as a run of kind ``undo`` that says which run it undoes.

    Its report goes where people find it (default): next to the undone run's report, else
    next to that run's input, never in the data folder beside the undo sheet.
    """
    return apply(
        client,
        settings,
        prepared,
        kind="undo",
        output=output or report_beside(settings.home, run_id, "undo"),
        on_progress=on_progress,
        meta={"undo_of": run_id},
    )
