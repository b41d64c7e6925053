"""Migrate: move users from one SKU to another by a mapping file, in waves that fit the seats.

    read the map -> read the tenant -> plan each user's move -> waves:
        (read seats -> wave sheet -> jobs.prepare -> jobs.apply -> read back) ... -> report

This is the CSP-migration job. It writes no Graph request itself: each wave is an ordinary
sheet (one row per user: ``AddLicenses`` ToSku with the translated ``DisabledPlans``,
``RemoveLicenses`` FromSku) run through the onboarding pipeline
(:func:`batch.jobs.onboarding.prepare` and :func:`batch.jobs.onboarding.apply`, with exact
plans), so every wave is journaled, resumable, read back and verified like any run. A swap
is therefore one ``assignLicense`` call with the add and the remove together: the user is
never without a license.

The map (CSV or XLSX), one row per SKU to move, headers matched ignoring case and spaces:

- ``FromSku``, ``ToSku`` (required): part number, product name or skuId GUID;
- ``KeepDisabledPlans`` (yes/no, default yes): carry each user's disabled plans over, by
  service-plan id or name; disabled plans with no counterpart in ToSku are listed in the
  report (``UntranslatedPlans``);
- ``DisablePlans``: plans of ToSku to disable for everyone moved (names or GUIDs, ``;``);
- ``DisableNewPlans`` (yes/no, default no): also disable every ToSku plan the user did not
  have enabled in FromSku, so nobody gains a service. Otherwise those plans are listed per
  user as ``NewlyEnabledPlans``: never enabled silently.

A row whose FromSku equals ToSku (the new CSP sells the same offer) changes no user: it
produces the seat reconciliation (enabled against warning/suspended units, assigned against
purchased, the shortfall once the old units expire).

Per user: FromSku held directly is swapped; held through a group only, the user is reported
(the group's license is what must change, listed in the ``Groups`` sheet) and never fails,
unless ``change_groups`` is asked: then each licensed group granting a FromSku whose members
are all in scope is switched after the waves, in two steps (ToSku added, Entra's processing
waited for, FromSku removed only when no member is in error), and its members get the
group's outcome (see :mod:`batch.jobs.migrate.groups`);
a user already holding ToSku only loses FromSku (ToSku's plans are left as they are, and a
difference from the translated plans is said); users named in ``--users`` but missing from
the tenant, or not holding FromSku, get their own status.

Waves: before each wave the seats are read again, and the wave takes as many users as
ToSku's free seats (and ``wave_size``) allow. When no user fits, the migration waits for
seats if asked (``wait_for_seats``: the new CSP often delivers seats in tranches), else it
stops and says "need N more seats of X". A wave whose failed share exceeds
:data:`MAX_WAVE_FAILURE_SHARE` stops the migration before the next one. Disabled accounts are
moved too (a migration keeps the tenant as it was), and the removal guard does not apply: a
swap takes nothing away. The migration's own journal lists its waves, so ``undo`` reverts
all of them at once.
"""

from __future__ import annotations

import csv
import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from batch.config import Settings
from batch.errors import BatchError, InputError
from batch.graph.engine import EngineStats
from batch.intake.catalog import Catalog
from batch.intake.sources import read_sheet
from batch.jobs.export import read_all_users, read_licensed_groups
from batch.jobs.migrate.groups import plan_group_moves, run_group_moves
from batch.jobs.migrate.mapping import (
    FAILED,
    NO_CHANGE,
    PLANNED,
    SKIPPED,
    MapLine,
    MapRule,
    read_map,
)
from batch.jobs.migrate.model import (
    GroupLine,
    Migration,
    Move,
    Step,
    WaveResult,
    reconcile_text,
    translate_plans,
)
from batch.jobs.onboarding import RunOptions, apply, prepare
from batch.run.journal import FINISHED, Journal, file_sha256, new_run_id
from batch.run.tenant import SkuSeats, UserState, read_seats, seats_from_skus

__all__ = [
    "MAX_WAVE_FAILURE_SHARE",
    "MapLine",
    "MapRule",
    "Migration",
    "Move",
    "WaveResult",
    "plan_migration",
    "read_map",
    "run_migration",
    "translate_plans",
]

#: a wave with a larger share of failed users stops the migration before the next wave
MAX_WAVE_FAILURE_SHARE = 0.10

NEED_SEATS = "need {need} more seats of {sku} ({users} users wait; {free} free)"


def plan_migration(
    client: Any, map_path: Path, users_path: Path | None = None, *, change_groups: bool = False
) -> Migration:
    """Read the map and the tenant and plan every user's move. Writes nothing.

    :param change_groups: plan the licensed groups that grant a FromSku to change too
        (:mod:`batch.jobs.migrate.groups`); otherwise they are only reported.
    """
    skus = list(client.get_all("/subscribedSkus"))
    catalog = Catalog.load(skus)
    seats = seats_from_skus(skus)
    headers, lines = read_map(map_path, catalog)
    migration = Migration(
        map_path=map_path,
        map_sha256=file_sha256(map_path),
        users_path=users_path,
        lines=lines,
        moves=[],
        groups=[],
        seats_before=seats,
        map_headers=headers,
    )
    rules = migration.rules
    for line in lines:
        if line.rule and line.rule.same_sku:
            line.status = NO_CHANGE
            line.detail = reconcile_text(next(s for s in seats if s.sku_id == line.rule.from_id))
    if not rules:
        return migration
    plans = {s.sku_id: dict(s.service_plans) for s in seats}
    users = read_all_users(client)
    groups, _ = read_licensed_groups(client)
    for group in groups:
        for rule in rules:
            if rule.from_id in group.sku_ids:
                migration.groups.append(
                    GroupLine(group.id, group.display_name, len(group.members), rule)
                )
    group_names = {g.id: g.display_name for g in groups}
    by_key: dict[str, UserState] = {}
    for user in users:
        by_key[user.upn.casefold()] = by_key[user.id.casefold()] = user
    if users_path is not None:
        wanted = _users_from_sheet(users_path)
        selected = [(name, by_key.get(name.casefold())) for name in wanted]
    else:
        held = {r.from_id for r in rules}
        selected = [
            (u.upn, u)
            for u in sorted(users, key=lambda u: (u.upn.casefold(), u.id))
            if held & set(u.licenses)
        ]
    per_rule: Counter[int] = Counter()
    for name, found in selected:
        move = _plan_user(name, found, rules, plans, group_names)
        migration.moves.append(move)
        for step in move.steps:
            per_rule[step.rule.row] += 1
    if change_groups:
        plan_group_moves(migration, groups, users, plans, selected if users_path else None)
    for line in lines:
        if line.rule and not line.rule.same_sku:
            line.users = per_rule[line.rule.row]
    return migration


def _users_from_sheet(path: Path) -> list[str]:
    sheet = read_sheet(path)
    field_name = (
        "upn" if "upn" in sheet.fields else "object_id" if "object_id" in sheet.fields else None
    )
    if field_name is None:
        raise InputError(
            "the users sheet has no UserPrincipalName (or ObjectId) column.",
            path=path,
            sheet=sheet.sheet_name,
            row=sheet.header_row,
            hint="Add one, one user per row.",
        )
    names = [sheet.value(row, field_name) for row in sheet.rows]
    return list(dict.fromkeys(n for n in names if n))


def _plan_user(
    name: str,
    user: UserState | None,
    rules: Sequence[MapRule],
    plans: Mapping[str, Mapping[str, str]],
    group_names: Mapping[str, str],
) -> Move:
    if user is None:
        return Move(
            name,
            None,
            "",
            status=FAILED,
            error_code="UserNotFound",
            detail=f"no user {name} in the tenant",
        )
    move = Move(user.upn, user.id, user.display_name)
    taken: set[str] = set()  # ToSkus this user gets in this move
    for rule in rules:
        held = user.licenses.get(rule.from_id)
        if held is None:
            continue
        groups = ", ".join(f"'{group_names.get(g, g)}'" for g in held.groups)
        if not held.direct:
            move.steps.append(Step(rule, "inherited"))
            move.note(
                f"{rule.from_part} is inherited from {groups}: change the group's license "
                f"to {rule.to_part} (its members follow)"
            )
            continue
        if held.inherited:
            move.note(f"{rule.from_part} also comes from {groups}, which keeps granting it")
        disabled, kept, untranslated, newly = translate_plans(
            rule, plans.get(rule.from_id, {}), plans.get(rule.to_id, {}), held.disabled_plans
        )
        to_held = user.licenses.get(rule.to_id)
        if to_held is not None or rule.to_id in taken:
            move.steps.append(Step(rule, "remove"))
            if to_held is None:
                move.note(
                    f"{rule.to_part} comes with another license of this move: "
                    f"only {rule.from_part} is removed"
                )
            elif not to_held.direct:
                move.note(
                    f"{rule.to_part} already held through a group: only {rule.from_part} is removed"
                )
            elif to_held.disabled_plans != disabled:
                names = plans.get(rule.to_id, {})
                have = ", ".join(sorted(names.get(p, p) for p in to_held.disabled_plans)) or "none"
                would = ", ".join(sorted(names.get(p, p) for p in disabled)) or "none"
                move.note(
                    f"{rule.to_part} already held: only {rule.from_part} is removed; its disabled "
                    f"plans ({have}) are kept, though {rule.from_part}'s would translate "
                    f"to ({would})"
                )
            else:
                move.note(
                    f"{rule.to_part} already held with the same plans: "
                    f"only {rule.from_part} is removed"
                )
            continue
        taken.add(rule.to_id)
        move.steps.append(Step(rule, "swap", disabled, kept, untranslated, newly))
        if untranslated:
            move.note(
                f"disabled in {rule.from_part} with no counterpart in {rule.to_part}: "
                + ", ".join(untranslated)
            )
    if not move.steps:
        move.status = SKIPPED
        holds = [r.to_part for r in rules if r.to_id in user.licenses]
        move.detail = (
            f"already on {', '.join(holds)}"
            if holds
            else "holds none of the licenses the map moves"
        )
        move.status = NO_CHANGE if holds else SKIPPED
    elif not move.writes:
        move.status, move.error_code = SKIPPED, "InheritedFromGroup"
    return move


# -- running ---------------------------------------------------------------------------------------

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
    on_progress: Callable[[EngineStats], None] | None = None,
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
    names = {s.sku_id: s.part_number for s in migration.seats_before}
    # users moved through their group (no write of their own) wait for the group step
    pending = [m for m in migration.moves if m.status == PLANNED and m.writes]
    folder = settings.home / "migrations" / migration.migration_id
    poll = poll if poll is not None else min(10.0, max(0.5, wait_for_seats / 50))
    short = migration.shortfalls()
    if no_waves and short:
        for move in pending:
            _no_seats(move, short, pending, names, migration.seats_before)
        migration.notes += _need_notes(
            short, pending, names, migration.seats_before, "--no-waves: nothing was changed"
        )
        pending = []
    size = len(pending) if no_waves or not wave_size else wave_size
    deadline = clock() + wait_for_seats
    stop: BatchError | None = None
    while pending and stop is None:
        seats = read_seats(client)
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
        if not wave:
            if clock() < deadline:
                sleep(poll)
                continue
            short = _short(rest, seats)
            for move in rest:
                _no_seats(move, short, rest, names, seats)
            migration.notes += _need_notes(short, rest, names, seats, "the migration stopped")
            break
        try:
            result = _run_wave(client, settings, migration, wave, seats, folder, on_progress)
        except BatchError as exc:  # breaker, permissions: the wave's own report says more
            stop = exc
            migration.notes.append(f"Stopped in wave {len(migration.waves) + 1}: {exc}")
            for move in wave:
                move.note(
                    "the wave stopped before this user was confirmed: "
                    "`m365batch resume` continues it"
                )
            break
        if on_wave:
            on_wave(result)
        pending = rest
        failed = result.counts.get(FAILED, 0)
        if pending and failed > MAX_WAVE_FAILURE_SHARE * result.users:
            migration.notes.append(
                f"Stopped after wave {result.number}: {failed} of {result.users} users failed; "
                "fix them "
                "(see the Rows sheet) and run migrate again to move the rest"
            )
            for move in pending:
                move.note(f"not started: wave {result.number} failed too often")
            break
    if stop is None and any(g.status == PLANNED for g in migration.groups):
        try:
            run_group_moves(
                client,
                settings,
                migration,
                wait_for_groups=wait_for_groups,
                sleep=sleep,
                clock=clock,
            )
        except BatchError as exc:  # permissions, breaker: the report says how far it got
            stop = exc
            migration.notes.append(f"Stopped while changing groups: {exc}")
    migration.seats_after = read_seats(client)
    migration.finished = dt.datetime.now()
    if migration.wrote:
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
    if stop is not None and migration.wrote:
        migration.notes.append(
            f"Undo what the finished waves did: `m365batch undo {migration.migration_id}`."
        )
    migration.error = stop
    return migration


def _run_wave(
    client: Any,
    settings: Settings,
    migration: Migration,
    wave: list[Move],
    seats: list[SkuSeats],
    folder: Path,
    on_progress: Callable[[EngineStats], None] | None,
) -> WaveResult:
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
    prepared = prepare(client, sheet, RunOptions(exact_plans=True, include_disabled=True))
    result = apply(
        client,
        settings,
        prepared,
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
    move.status, move.error_code = FAILED, "NoSeats"
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
