"""Migrate, the moves: plan each user's move from one SKU to another by a mapping file.

    read the map -> read the tenant -> plan each user's move -> waves (:mod:`.waves`) -> report

This is the CSP-migration job's plan; it writes nothing. The moves are then run in waves
(:func:`batch.jobs.migrate.run.run_migration`), each an ordinary sheet run through the
onboarding pipeline with exact plans: a swap is one ``assignLicense`` call with the add and
the remove together, so the user is never without a license.

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

Waves (:mod:`batch.jobs.migrate.waves`) fit the free seats of ToSku, read again before each
one. Disabled accounts are moved too (a migration keeps the tenant as it was), and the
removal guard does not apply: a swap takes nothing away.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from batch.intake.catalog import Catalog
from batch.jobs.export import read_all_users, read_licensed_groups
from batch.jobs.migrate.groups import plan_group_moves
from batch.jobs.migrate.mapping import MapRule, read_map, users_from_sheet
from batch.jobs.migrate.model import (
    GroupLine,
    Migration,
    Move,
    Step,
    reconcile_text,
    translate_plans,
)
from batch.run.journal import file_sha256
from batch.run.tenant import HeldLicense, UserState, seats_from_skus
from batch.status import RowStatus

__all__ = ["plan_migration"]


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
            line.status = RowStatus.NO_CHANGE
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
        wanted = users_from_sheet(users_path)
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
            status=RowStatus.FAILED,
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
            move.note(_only_removed(rule, to_held, disabled, plans.get(rule.to_id, {})))
            continue
        taken.add(rule.to_id)
        move.steps.append(Step(rule, "swap", disabled, kept, untranslated, newly))
        if untranslated:
            move.note(
                f"disabled in {rule.from_part} with no counterpart in {rule.to_part}: "
                + ", ".join(untranslated)
            )
    if not move.steps:
        move.status = RowStatus.SKIPPED
        holds = [r.to_part for r in rules if r.to_id in user.licenses]
        move.detail = (
            f"already on {', '.join(holds)}"
            if holds
            else "holds none of the licenses the map moves"
        )
        move.status = RowStatus.NO_CHANGE if holds else RowStatus.SKIPPED
    elif not move.writes:
        move.status, move.error_code = RowStatus.SKIPPED, "InheritedFromGroup"
    return move


def _only_removed(
    rule: MapRule, to_held: HeldLicense | None, disabled: frozenset[str], names: Mapping[str, str]
) -> str:
    """Why a user already holding ToSku (or getting it from another rule) only loses FromSku."""
    if to_held is None:
        return (
            f"{rule.to_part} comes with another license of this move: "
            f"only {rule.from_part} is removed"
        )
    if not to_held.direct:
        return f"{rule.to_part} already held through a group: only {rule.from_part} is removed"
    if to_held.disabled_plans != disabled:
        have = ", ".join(sorted(names.get(p, p) for p in to_held.disabled_plans)) or "none"
        would = ", ".join(sorted(names.get(p, p) for p in disabled)) or "none"
        return (
            f"{rule.to_part} already held: only {rule.from_part} is removed; its disabled "
            f"plans ({have}) are kept, though {rule.from_part}'s would translate "
            f"to ({would})"
        )
    return f"{rule.to_part} already held with the same plans: only {rule.from_part} is removed"
