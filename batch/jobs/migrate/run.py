"""Migrate, the run: the waves, then the licensed groups, then the migration's own journal.

    waves (:mod:`.waves`) -> licensed groups (:mod:`.groups`) -> journal listing the parts

Each wave and the groups' switch is a run of its own; the migration's journal lists them as
``parts``, so ``undo`` reverts all of them at once. Nothing here raises for a stopped wave
or group: the error is kept in ``migration.error`` so that the report is written first.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batch.config import Settings
from batch.jobs.migrate.groups import predict_groups, run_group_moves
from batch.jobs.migrate.model import Migration, WaveResult
from batch.jobs.migrate.waves import predict_waves, run_waves
from batch.jobs.onboarding.context import Progress
from batch.run.journal import FINISHED, Journal, new_run_id
from batch.run.tenant import read_seats
from batch.status import RowStatus

__all__ = ["predict_migration", "record_report", "run_migration"]


def predict_migration(migration: Migration, *, no_waves: bool = False) -> None:
    """Mark, for a dry run, what a real run would leave waiting: users the waves' seats do
    not reach, then groups the seats left after the waves do not fit (both ``Deferred``)."""
    written = predict_waves(migration, no_waves=no_waves)
    if any(g.status == RowStatus.PLANNED for g in migration.groups):
        predict_groups(migration, written)


def run_migration(
    client: Any,
    settings: Settings,
    migration: Migration,
    *,
    wave_size: int | None = None,
    no_waves: bool = False,
    wait_for_seats: float = 0.0,
    wait_for_groups: float = 300.0,
    poll: float | None = None,
    on_wave: Callable[[WaveResult], None] | None = None,
    on_progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Migration:
    """Run the planned moves in waves through the onboarding pipeline; return the migration.

    A :class:`BatchError` that stops a wave (breaker, permissions) ends the migration and is
    kept in ``migration.error`` so that the caller can write the report before raising it.

    :param wave_size: most users per wave (default: as many as the seats allow).
    :param no_waves: all users in one wave, or none at all when seats are short.
    :param wait_for_seats: seconds to wait, in total, for free seats when no user fits.
    :param wait_for_groups: seconds to wait for Entra to process each step of a group's
        license change (planned with ``change_groups``), after the waves.
    """
    migration.mode = "migrate"
    migration.migration_id = migration.migration_id or new_run_id()
    stop = run_waves(
        client,
        settings,
        migration,
        wave_size=wave_size,
        no_waves=no_waves,
        wait_for_seats=wait_for_seats,
        poll=poll,
        on_wave=on_wave,
        on_progress=on_progress,
        sleep=sleep,
        clock=clock,
    )
    if stop is None and any(g.status == RowStatus.PLANNED for g in migration.groups):
        stop = run_group_moves(
            client, settings, migration, wait_for_groups=wait_for_groups, sleep=sleep, clock=clock
        )
    migration.seats_after = read_seats(client)
    migration.finished = dt.datetime.now()
    if migration.wrote:
        _record(settings, migration)
    if stop is not None and migration.wrote:
        migration.notes.append(
            f"Undo what the finished waves did: `m365batch undo {migration.migration_id}`."
        )
    migration.error = stop
    return migration


def _record(settings: Settings, migration: Migration) -> None:
    """The migration's own journal: its waves and groups' run as parts, for ``undo``."""
    with Journal.create(
        settings.home,
        kind="migrate",
        tenant=str(settings.tenant_id),
        input_path=migration.map_path.resolve(),
        input_sha256=migration.map_sha256,
        run_id=migration.migration_id,
        meta={
            "parts": [w.run_id for w in migration.waves]
            + ([migration.groups_run_id] if migration.groups_run_id else []),
            "tenant_label": settings.describe(),
        },
    ) as journal:
        journal.finish(FINISHED, counts=dict(migration.counts()))


def record_report(settings: Settings, migration: Migration, report: Path) -> None:
    """Note the migration's workbook in its journal (``runs`` lists it; undo writes beside it).

    A dry run, or a migration that changed nothing, has no journal: nothing to note.
    """
    if not migration.wrote:
        return
    with Journal.open(settings.home, migration.migration_id) as journal:
        journal.set(report=str(report.resolve()))
