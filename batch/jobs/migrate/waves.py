"""Migrate, the waves: run the planned moves through the onboarding pipeline, as seats allow.

    (read seats -> wave sheet -> onboarding: prepare -> apply -> read back) ...

Each wave is an ordinary sheet (one row per user: ``AddLicenses`` ToSku with the translated
``DisabledPlans``, ``RemoveLicenses`` FromSku), kept in the migration's folder beside the
wave's report, and applied with exact plans
(:func:`batch.jobs.onboarding.apply.apply_written_sheet`): each move is one
``assignLicense`` call with the add and the remove together, journaled, resumable, read back
and verified like any run.

Before each wave the seats are read again, and the wave takes as many users as ToSku's free
seats (and ``wave_size``) allow. When no user fits, the migration waits for seats if asked
(``wait_for_seats``: the new CSP often delivers seats in tranches), else it stops and says
"need N more seats of X". A wave whose failed share exceeds :data:`MAX_WAVE_FAILURE_SHARE`
stops the migration before the next one.
"""

from __future__ import annotations

import csv
import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from batch.config import Settings
from batch.errors import BatchError
from batch.jobs.migrate.model import Migration, Move, WaveResult
from batch.jobs.onboarding.apply import apply_written_sheet
from batch.jobs.onboarding.context import Progress
from batch.run.tenant import SkuSeats, read_seats
from batch.status import RowStatus

__all__ = ["MAX_WAVE_FAILURE_SHARE", "WAVE_HEADERS", "predict_waves", "run_waves"]

#: a wave with a larger share of failed users stops the migration before the next wave
MAX_WAVE_FAILURE_SHARE = 0.10

NEED_SEATS = "need {need} more seats of {sku} ({users} users wait; {free} free)"
WAVE_STOPPED = "the wave stopped before this user was confirmed: `m365batch resume` continues it"

WAVE_HEADERS = (
    "UserPrincipalName",
    "AddLicenses",
    "RemoveLicenses",
    "DisabledPlans",
    "DisplayName",
    "Migration",
    "NewlyEnabledPlans",
    "UntranslatedPlans",
)


def run_waves(
    client: Any,
    settings: Settings,
    migration: Migration,
    *,
    wave_size: int | None = None,
    no_waves: bool = False,
    wait_for_seats: float = 0.0,
    poll: float | None = None,
    on_wave: Callable[[WaveResult], None] | None = None,
    on_progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> BatchError | None:
    """Run the planned direct moves in waves; the error that stopped them, if one did.

    A :class:`BatchError` that stops a wave (breaker, permissions) ends the waves; it is
    returned, not raised, so that the caller can finish the migration and its report first.
    """
    # users moved through their group (no write of their own) wait for the group step
    pending = [m for m in migration.moves if m.status == RowStatus.PLANNED and m.writes]
    short = migration.shortfalls()
    if no_waves and short:
        names = {s.sku_id: s.part_number for s in migration.seats_before}
        for move in pending:
            _no_seats(move, short, pending, names, migration.seats_before)
        migration.notes += _need_notes(
            short, pending, names, migration.seats_before, "--no-waves: nothing was changed"
        )
        pending = []
    waves = _Waves(
        client,
        settings,
        migration,
        folder=settings.home / "migrations" / str(migration.migration_id),
        size=len(pending) if no_waves or not wave_size else wave_size,
        on_progress=on_progress,
        on_wave=on_wave,
        sleep=sleep,
        clock=clock,
    )
    poll = poll if poll is not None else min(10.0, max(0.5, wait_for_seats / 50))
    return waves.run(pending, deadline=clock() + wait_for_seats, poll=poll)


@dataclass
class _Waves:
    """The wave loop of :func:`run_waves` and what every wave shares."""

    client: Any
    settings: Settings
    migration: Migration
    folder: Path
    size: int
    on_progress: Progress | None
    on_wave: Callable[[WaveResult], None] | None
    sleep: Callable[[float], None]
    clock: Callable[[], float]

    def run(self, pending: list[Move], *, deadline: float, poll: float) -> BatchError | None:
        """Run waves until every move is done, seats run out, or a wave stops; the error."""
        migration = self.migration
        names = {s.sku_id: s.part_number for s in migration.seats_before}
        while pending:
            seats = read_seats(self.client)
            wave, rest = _fill(pending, seats, self.size)
            if not wave:
                if self.clock() < deadline:
                    self.sleep(poll)
                    continue
                short = _short(rest, seats)
                for move in rest:
                    _no_seats(move, short, rest, names, seats)
                migration.notes += _need_notes(short, rest, names, seats, "the migration stopped")
                return None
            try:
                result = run_wave(
                    self.client,
                    self.settings,
                    migration,
                    wave,
                    seats,
                    self.folder,
                    self.on_progress,
                )
            except BatchError as exc:  # breaker, permissions: the wave's own report says more
                migration.notes.append(f"Stopped in wave {len(migration.waves) + 1}: {exc}")
                for move in wave:
                    move.note(WAVE_STOPPED)
                return exc
            if self.on_wave:
                self.on_wave(result)
            pending = rest
            failed = result.counts.get(RowStatus.FAILED, 0)
            if pending and failed > MAX_WAVE_FAILURE_SHARE * result.users:
                migration.notes.append(
                    f"Stopped after wave {result.number}: {failed} of {result.users} users "
                    "failed; fix them (see the Rows sheet) and run migrate again to move the rest"
                )
                for move in pending:
                    move.note(f"not started: wave {result.number} failed too often")
                return None
        return None


def run_wave(
    client: Any,
    settings: Settings,
    migration: Migration,
    wave: list[Move],
    seats: list[SkuSeats],
    folder: Path,
    on_progress: Progress | None,
) -> WaveResult:
    """Write the wave's sheet, run it through the onboarding pipeline, settle its users."""
    number = len(migration.waves) + 1
    started = dt.datetime.now()
    folder.mkdir(parents=True, exist_ok=True)
    sheet = folder / f"wave-{number:02d}.csv"
    rows = {}
    with sheet.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(WAVE_HEADERS)
        for index, move in enumerate(wave):
            rows[index + 2] = move  # the Excel row number of the move in the wave sheet
            writer.writerow(_wave_row(move, migration.seats_before))
    # exact plans: ToSku gets exactly the translated plans; disabled accounts move too
    result = apply_written_sheet(
        client,
        settings,
        sheet,
        kind="migrate-wave",
        output=folder / f"wave-{number:02d}-report.xlsx",
        on_progress=on_progress,
        meta={"migration": migration.migration_id, "wave": number},
    )
    for row, move in rows.items():
        outcome = result.outcomes.get(row)
        move.wave, move.run_id = number, result.run_id
        if outcome is None:
            continue
        move.status, move.error_code = outcome.status, outcome.error_code
        move.added, move.removed = outcome.added, outcome.removed
        move.request_id, move.verified = outcome.request_id, outcome.verified
        move.licenses_after = outcome.licenses_after
        move.note(outcome.detail)
    after = {s.sku_id: s.free for s in read_seats(client)}
    tos = {step.rule.to_id for move in wave for step in move.steps}
    names = {s.sku_id: s.part_number for s in seats}
    wave_result = WaveResult(
        number=number,
        run_id=result.run_id,
        report=result.report,
        users=len(wave),
        counts=Counter(m.status for m in wave),
        free_before={
            names.get(s, s): next((x.free for x in seats if x.sku_id == s), 0) for s in sorted(tos)
        },
        free_after={names.get(s, s): after.get(s, 0) for s in sorted(tos)},
        started=started,
        finished=dt.datetime.now(),
    )
    migration.waves.append(wave_result)
    migration.changes += [(number, change) for change in result.changes]
    return wave_result


def _wave_row(move: Move, seats: Sequence[SkuSeats]) -> list[str]:
    names = {s.sku_id: dict(s.service_plans) for s in seats}
    adds = [s for s in move.steps if s.kind == "swap"]
    disabled = [
        f"{s.rule.to_part}:{names.get(s.rule.to_id, {}).get(p, p)}"
        for s in adds
        for p in sorted(s.disabled_to)
    ]
    return [
        move.upn,
        ";".join(s.rule.to_part for s in adds),
        ";".join(s.rule.from_part for s in move.writes),
        ";".join(disabled),
        move.display_name,
        "; ".join(s.rule.label for s in move.writes),
        "; ".join(p for s in adds for p in s.newly),
        "; ".join(p for s in adds for p in s.untranslated),
    ]


def predict_waves(migration: Migration, *, no_waves: bool = False) -> list[Move]:
    """Mark what a real run would leave waiting, for a dry run: the same words, the same rows.

    The first wave takes the users the free seats fit (none with ``no_waves`` when seats are
    short); the others are ``Deferred`` (NoSeats) with the seats they wait for, as a run that
    stops for seats leaves them. Returns the moves the waves would write.
    """
    pending = [m for m in migration.moves if m.status == RowStatus.PLANNED and m.writes]
    short = migration.shortfalls()
    if not short:
        return pending
    seats = migration.seats_before
    names = {s.sku_id: s.part_number for s in seats}
    wave: list[Move] = []
    if no_waves:
        rest, suffix = pending, "--no-waves: nothing would change"
    else:
        wave, rest = _fill(pending, seats, len(pending))
        taken: Counter[str] = Counter()
        for move in wave:
            taken.update(move.needs())
        seats = [replace(s, consumed=s.consumed + taken[s.sku_id]) for s in seats]
        short, suffix = _short(rest, seats), "the migration would stop there"
    for move in rest:
        _no_seats(move, short, rest, names, seats)
    migration.notes += _need_notes(short, rest, names, seats, suffix)
    return wave


def _fill(
    pending: Sequence[Move], seats: Sequence[SkuSeats], size: int
) -> tuple[list[Move], list[Move]]:
    """The next wave (as many moves as the free seats and ``size`` allow) and the rest."""
    free = {s.sku_id: s.free for s in seats}
    wave: list[Move] = []
    rest: list[Move] = []
    for move in pending:
        needs = move.needs()
        if len(wave) < size and all(free.get(s, 0) >= n for s, n in needs.items()):
            wave.append(move)
            for sku, n in needs.items():
                free[sku] -= n
        else:
            rest.append(move)
    return wave, rest


def _short(moves: Sequence[Move], seats: Sequence[SkuSeats]) -> dict[str, int]:
    free = {s.sku_id: s.free for s in seats}
    need: Counter[str] = Counter()
    for move in moves:
        need.update(move.needs())
    return {sku: n - free.get(sku, 0) for sku, n in need.items() if n > free.get(sku, 0)}


def _no_seats(
    move: Move,
    short: Mapping[str, int],
    moves: Sequence[Move],
    names: Mapping[str, str],
    seats: Sequence[SkuSeats],
) -> None:
    lacking = [sku for sku in move.needs() if sku in short]
    if not lacking:
        move.note("not started: the migration stopped for seats of another SKU")
        return
    move.status, move.error_code = RowStatus.DEFERRED, "NoSeats"
    move.note("; ".join(_need_notes({s: short[s] for s in lacking}, moves, names, seats, "")))


def _need_notes(
    short: Mapping[str, int],
    moves: Sequence[Move],
    names: Mapping[str, str],
    seats: Sequence[SkuSeats],
    suffix: str,
) -> list[str]:
    free = {s.sku_id: s.free for s in seats}
    notes = []
    for sku, need in sorted(short.items(), key=lambda kv: names.get(kv[0], kv[0])):
        waiting = sum(1 for m in moves if sku in m.needs())
        text = NEED_SEATS.format(
            need=need, sku=names.get(sku, sku), users=waiting, free=free.get(sku, 0)
        )
        notes.append(f"{text}: {suffix}" if suffix else text)
    return notes
