"""Migrate, group-based licensing: switch a licensed group from FromSku to ToSku in two steps.

    plan (scope, seats, translated plans) -> step one: add ToSku to the group -> wait for
    Entra to process every member -> step two, only if no member is in error: remove FromSku

This follows Microsoft's procedure for changing the license of a group ("change licenses
for users and groups" in Entra's group-based licensing): the new license is added to the
group first, Entra assigns it to every member in the background, errors are checked
(``CountViolation``, ``MutuallyExclusiveViolation``, ...), and only then is the old license
removed, so no member is ever without a license. A member in error keeps FromSku, and so does
the whole group: it is reported "left on both SKUs", to fix and run again (running
``migrate`` again finds the group holding both and only does step two).

Each step is one ``POST /groups/{id}/assignLicense`` (answered 202; the change is processed
asynchronously) sent through the batch engine like every write: journaled in a run of its
own (kind ``migrate-groups``, listed among the migration's parts), with a read-back of the
group's ``assignedLicenses``. The group's disabled plans are translated exactly as a direct
user's (:func:`batch.jobs.migrate.model.translate_plans`); the two steps are run by
:mod:`batch.jobs.migrate.switch`. Waiting polls the group's members
(``licenseAssignmentStates``) until each shows ToSku from the group as processed, or until
``wait_for_groups`` seconds have passed: a group whose members are not all processed by
then is also left on both SKUs.

Chosen where Graph documents nothing: a member counts as processed when its state for the
group's SKU is anything but ``ActivePending``/``PendingInput`` or when it carries an error;
polling starts at a quarter second and doubles up to 5 s.

Scope: a group changes only when every member of it is in scope (with ``--users``, every
member is in the sheet); otherwise it is reported out of scope and left as it is. Seats:
members not already holding ToSku each take one (they hold both during the switch); when
ToSku's free seats are short the group is not touched: it and its members are ``Deferred``
(``NoSeats``, "need N more seats of X for group G"), as users the waves' seats do not reach,
and a dry run predicts the same from the seats the waves would leave.

``undo`` reverts a group the same way (:func:`batch.jobs.migrate.switch.undo_group_changes`):
FromSku added back with the disabled plans it had, processing waited for, then ToSku removed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from batch.config import Settings
from batch.errors import BatchError
from batch.jobs.export import LicensedGroup
from batch.jobs.migrate.model import GroupLine, Migration, Move, Step, translate_plans
from batch.jobs.migrate.switch import GroupSwitch, switch_groups
from batch.run.reconcile import GROUP_ERRORS, licenses_text
from batch.run.tenant import SkuSeats, UserState, read_seats
from batch.status import RowStatus

__all__ = ["defer_short_groups", "plan_group_moves", "predict_groups", "run_group_moves"]

# -- planning --------------------------------------------------------------------------------


def plan_group_moves(
    migration: Migration,
    groups: Sequence[LicensedGroup],
    users: Iterable[UserState],
    plans: Mapping[str, Mapping[str, str]],
    selected: Sequence[tuple[str, UserState | None]] | None,
) -> None:
    """Plan each licensed group's switch and mark its members' moves. Writes nothing.

    :param selected: the users of the ``--users`` sheet, or None when every holder is in scope.
    """
    by_id = {u.id: u for u in users}
    in_sheet = {u.id for _, u in selected or () if u is not None}
    found = {g.id: g for g in groups}
    for line in migration.groups:
        group = found[line.group_id]
        rule = line.rule
        line.member_ids = group.members
        line.before = {
            str(a["skuId"]).lower(): sorted(str(p).lower() for p in a.get("disabledPlans") or [])
            for a in group.raw.get("assignedLicenses") or []
        }
        outside = [m for m in group.members if selected is not None and m not in in_sheet]
        if outside:
            line.status = RowStatus.SKIPPED
            line.detail = (
                f"out of scope: {len(outside)} of its {len(group.members)} members are not in "
                "the users sheet, so its license is left as it is"
            )
            continue
        if rule.to_id in line.before:
            line.action = "finish"
            line.disabled_to = frozenset(line.before[rule.to_id])
            line.detail = f"{rule.to_part} already on the group: only {rule.from_part} is removed"
        else:
            line.action = "switch"
            disabled, _, untranslated, _ = translate_plans(
                rule,
                plans.get(rule.from_id, {}),
                plans.get(rule.to_id, {}),
                line.before.get(rule.from_id, []),
            )
            line.disabled_to = disabled
            if untranslated:
                line.detail = (
                    f"disabled in {rule.from_part} with no counterpart in {rule.to_part}: "
                    + ", ".join(untranslated)
                )
        line.need = sum(
            1 for m in group.members if m in by_id and rule.to_id not in by_id[m].licenses
        )
        line.status = RowStatus.PLANNED
        line.detail = "; ".join(
            filter(None, [line.detail, f"{line.need} members take a seat of {rule.to_part}"])
        )
    changing = {
        (g.group_id, g.rule.row): g for g in migration.groups if g.status == RowStatus.PLANNED
    }
    for move in migration.moves:
        _plan_member(move, by_id.get(move.user_id or ""), changing)


def _plan_member(
    move: Move, user: UserState | None, changing: Mapping[tuple[str, int], GroupLine]
) -> None:
    if user is None:
        return
    notes = []
    for index, step in enumerate(move.steps):
        if step.kind != "inherited":
            continue
        held = user.licenses[step.rule.from_id]
        lines = [changing.get((g, step.rule.row)) for g in held.groups]
        if not all(lines):
            continue  # another group keeps granting FromSku: the user stays as reported
        move.steps[index] = Step(step.rule, "group")
        names = ", ".join(f"'{line.name}'" for line in lines if line)
        notes.append(
            f"{step.rule.from_part} comes from {names}: the group's license changes to "
            f"{step.rule.to_part}"
        )
    if notes and not any(s.kind == "inherited" for s in move.steps):
        if move.status == RowStatus.SKIPPED:
            move.status, move.error_code, move.detail = RowStatus.PLANNED, "", ""
        for text in notes:
            move.note(text)


# -- running ---------------------------------------------------------------------------------


def run_group_moves(
    client: Any,
    settings: Settings,
    migration: Migration,
    *,
    wait_for_groups: float = 300.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> BatchError | None:
    """Switch every planned group (after the waves) and give its members their outcome.

    A :class:`BatchError` that stops it (permissions, breaker) is noted and returned, not
    raised, so that the report says how far it got.
    """
    try:
        _switch_groups(client, settings, migration, wait_for_groups, sleep, clock)
    except BatchError as exc:
        migration.notes.append(f"Stopped while changing groups: {exc}")
        return exc
    return None


def _switch_groups(
    client: Any,
    settings: Settings,
    migration: Migration,
    wait_for_groups: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> None:
    seats = read_seats(client)
    names = {s.sku_id: s.part_number for s in seats}
    switches = _switches(migration, seats)
    if not switches:
        return
    run_id = switch_groups(
        client,
        settings,
        [s for _, s in switches],
        kind="migrate-groups",
        meta={"migration": migration.migration_id},
        names=names,
        wait_for_groups=wait_for_groups,
        sleep=sleep,
        clock=clock,
        changes=migration.changes,
    )
    migration.groups_run_id = run_id
    group_names = {g.group_id: g.name for g in migration.groups}
    for line, switch in switches:
        line.status, line.detail = (
            switch.status,
            "; ".join(filter(None, [line.detail, switch.detail])),
        )
        line.step_one, line.step_two, line.run_id = switch.step_one, switch.step_two, run_id
        if switch.status != RowStatus.APPLIED:
            migration.notes.append(f"Group '{line.name}': {switch.detail}")
        for move in _members_moves(migration, line):
            move.run_id, move.request_id = run_id, switch.request_id
            state = switch.members.get(move.user_id or "")
            if state is not None:
                move.licenses_after = licenses_text(state, names, group_names)
            _settle_member(move, line, switch, state)


def _switches(
    migration: Migration, seats: Sequence[SkuSeats]
) -> list[tuple[GroupLine, GroupSwitch]]:
    """A switch for each planned group whose members fit ToSku's free seats; the others wait."""
    switches: list[tuple[GroupLine, GroupSwitch]] = []
    for index, line in enumerate(defer_short_groups(migration, seats)):
        rule = line.rule
        add = {} if line.action == "finish" else {rule.to_id: sorted(line.disabled_to)}
        switches.append(
            (
                line,
                GroupSwitch(
                    line.group_id,
                    line.name,
                    add,
                    [rule.from_id],
                    line.before,
                    index + 1,
                    f"group '{line.name}': {rule.from_part} -> {rule.to_part}",
                    watch=[rule.to_id],
                ),
            )
        )
    return switches


def defer_short_groups(
    migration: Migration, seats: Sequence[SkuSeats], *, predicted: bool = False
) -> list[GroupLine]:
    """The planned groups whose members fit ToSku's free seats, in order; the others wait.

    A group short of seats is not changed: it and its members are ``Deferred`` (NoSeats),
    as users the waves' seats do not reach, with the seats it needs. ``predicted``: a dry
    run's words for the same outcome.
    """
    free = {s.sku_id: s.free for s in seats}
    fitting: list[GroupLine] = []
    for line in [g for g in migration.groups if g.status == RowStatus.PLANNED]:
        rule = line.rule
        have = free.get(rule.to_id, 0)
        if line.action == "switch" and line.need > have:
            outcome = "would not be changed" if predicted else "was not changed"
            text = (
                f"need {line.need - have} more seats of {rule.to_part} for group '{line.name}' "
                f"({line.need} members wait for one; {have} free): the group {outcome}"
            )
            line.status, line.detail = RowStatus.DEFERRED, text
            migration.notes.append(text)
            _settle_members(migration, line, RowStatus.DEFERRED, "NoSeats", text)
            continue
        if line.action == "switch":
            free[rule.to_id] = have - line.need
        fitting.append(line)
    return fitting


def predict_groups(migration: Migration, written: Iterable[Move]) -> None:
    """Mark, for a dry run, the groups a real run would leave waiting for seats.

    A real run switches groups after the waves, with the seats the waves left: the free
    seats before, less what the ``written`` moves take, plus what their removals free.
    """
    taken: Counter[str] = Counter()
    for move in written:
        taken.update(move.needs())
        taken.subtract(s.rule.from_id for s in move.writes)
    seats = [replace(s, consumed=s.consumed + taken[s.sku_id]) for s in migration.seats_before]
    defer_short_groups(migration, seats, predicted=True)


def _settle_member(
    move: Move, line: GroupLine, switch: GroupSwitch, state: UserState | None
) -> None:
    """A member's outcome from its group's switch."""
    error = switch.errors.get(move.user_id or "")
    if switch.status == RowStatus.APPLIED:
        if move.status == RowStatus.PLANNED:
            move.status = RowStatus.APPLIED
        move.added = ", ".join(filter(None, [move.added, line.rule.to_part]))
        move.removed = ", ".join(filter(None, [move.removed, line.rule.from_part]))
        move.verified = state is not None and _switched(state, line)
    elif error:
        move.status, move.error_code = RowStatus.FAILED, error
        move.note(
            f"group licensing error {error} on {line.rule.to_part} from '{line.name}': "
            f"{GROUP_ERRORS.get(error, GROUP_ERRORS['Other'])}; the group keeps "
            f"{line.rule.from_part}, so this user keeps service"
        )
    else:
        move.status = RowStatus.FAILED
        move.error_code = move.error_code or "GroupNotSwitched"
        move.note(f"group '{line.name}' {switch.detail}")


def _members_moves(migration: Migration, line: GroupLine) -> list[Move]:
    return [
        m
        for m in migration.moves
        if m.user_id in line.member_ids
        and any(s.kind == "group" and s.rule.row == line.rule.row for s in m.steps)
    ]


def _settle_members(
    migration: Migration, line: GroupLine, status: str, code: str, text: str
) -> None:
    for move in _members_moves(migration, line):
        move.status, move.error_code = status, code
        move.note(text)


def _switched(state: UserState, line: GroupLine) -> bool:
    to_held = state.licenses.get(line.rule.to_id)
    from_held = state.licenses.get(line.rule.from_id)
    return (
        to_held is not None
        and line.group_id in to_held.groups
        and not to_held.errors
        and (from_held is None or line.group_id not in from_held.groups)
    )
