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
user's (:func:`batch.jobs.migrate.moves.translate_plans`). Waiting polls the group's members
(``licenseAssignmentStates``) until each shows ToSku from the group as processed, or until
``wait_for_groups`` seconds have passed: a group whose members are not all processed by
then is also left on both SKUs.

Chosen where Graph documents nothing: a member counts as processed when its state for the
group's SKU is anything but ``ActivePending``/``PendingInput`` or when it carries an error;
polling starts at a quarter second and doubles up to 5 s.

Scope: a group changes only when every member of it is in scope (with ``--users``, every
member is in the sheet); otherwise it is reported out of scope and left as it is. Seats:
members not already holding ToSku each take one (they hold both during the switch); when
ToSku's free seats are short the group is not touched ("need N more seats of X for group G").

``undo`` reverts a group the same way (:func:`undo_group_changes`): FromSku added back with
the disabled plans it had, processing waited for, then ToSku removed.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from batch.config import Settings
from batch.jobs.export import LicensedGroup
from batch.jobs.migrate.mapping import FAILED, PLANNED, SKIPPED
from batch.jobs.migrate.model import GroupLine, Migration, Move, Step, translate_plans
from batch.jobs.onboarding import GROUP_ASSIGN, change_lines, done_ops
from batch.run.execute import execute_plan, result_ok
from batch.run.journal import FINISHED, INTERRUPTED, Journal, tenant_lock
from batch.run.plan import APPLIED, PlannedOp
from batch.run.reconcile import GROUP_ERRORS, licenses_text
from batch.run.tenant import UserState, read_seats, user_state

__all__ = ["GroupSwitch", "plan_group_moves", "run_group_moves", "undo_group_changes"]

MEMBER_SELECT = "id,userPrincipalName,displayName,assignedLicenses,licenseAssignmentStates"
_PENDING = {"activepending", "pendinginput", "pending"}
LEFT_ON_BOTH = "left on both SKUs: fix and run again"


@dataclass
class GroupSwitch:
    """One group's two-step license change, and what came of it."""

    group_id: str
    name: str
    add: dict[str, list[str]]  # skuId -> disabled plan ids (step one)
    remove: list[str]  # skuIds (step two)
    before: dict[str, list[str]]
    row: int
    summary: str
    status: str = PLANNED
    detail: str = ""
    step_one: str = ""
    step_two: str = ""
    request_id: str = ""
    errors: dict[str, str] = field(default_factory=dict)  # member id -> error
    members: dict[str, UserState] = field(default_factory=dict)  # as last read
    #: skuIds whose processing step one waits for and checks (default: those added)
    watch: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.watch = self.watch or list(self.add)

    def note(self, text: str) -> None:
        self.detail = "; ".join(filter(None, [self.detail, text]))


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
            line.status = SKIPPED
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
        line.status = PLANNED
        line.detail = "; ".join(
            filter(None, [line.detail, f"{line.need} members take a seat of {rule.to_part}"])
        )
    changing = {(g.group_id, g.rule.row): g for g in migration.groups if g.status == PLANNED}
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
        if move.status == SKIPPED:
            move.status, move.error_code, move.detail = PLANNED, "", ""
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
) -> None:
    """Switch every planned group (after the waves) and give its members their outcome."""
    lines = [g for g in migration.groups if g.status == PLANNED]
    seats = read_seats(client)
    names = {s.sku_id: s.part_number for s in seats}
    free = {s.sku_id: s.free for s in seats}
    switches: list[tuple[GroupLine, GroupSwitch]] = []
    for index, line in enumerate(lines):
        rule = line.rule
        if line.action == "switch" and line.need > free.get(rule.to_id, 0):
            have = free.get(rule.to_id, 0)
            text = (
                f"need {line.need - have} more seats of {rule.to_part} for group '{line.name}' "
                f"({line.need} members take one; {have} free): the group was not changed"
            )
            line.status, line.detail = FAILED, text
            migration.notes.append(text)
            _settle_members(migration, line, FAILED, "NoSeats", text)
            continue
        if line.action == "switch":
            free[rule.to_id] = free.get(rule.to_id, 0) - line.need
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
        if switch.status != APPLIED:
            migration.notes.append(f"Group '{line.name}': {switch.detail}")
        for move in _members_moves(migration, line):
            move.run_id, move.request_id = run_id, switch.request_id
            state = switch.members.get(move.user_id or "")
            if state is not None:
                move.licenses_after = licenses_text(state, names, group_names)
            error = switch.errors.get(move.user_id or "")
            if switch.status == APPLIED:
                if move.status == PLANNED:
                    move.status = APPLIED
                move.added = ", ".join(filter(None, [move.added, line.rule.to_part]))
                move.removed = ", ".join(filter(None, [move.removed, line.rule.from_part]))
                move.verified = "Yes" if state is not None and _switched(state, line) else "No"
            elif error:
                move.status, move.error_code = FAILED, error
                move.note(
                    f"group licensing error {error} on {line.rule.to_part} from '{line.name}': "
                    f"{GROUP_ERRORS.get(error, GROUP_ERRORS['Other'])}; the group keeps "
                    f"{line.rule.from_part}, so this user keeps service"
                )
            else:
                move.status = FAILED
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


def switch_groups(
    client: Any,
    settings: Settings,
    switches: Sequence[GroupSwitch],
    *,
    kind: str,
    meta: Mapping[str, Any],
    names: Mapping[str, str],
    wait_for_groups: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    changes: list[tuple[int | None, Any]] | None = None,
) -> str:
    """Run the two steps for every group under one journal; return the run id.

    Step one (add) for all groups, wait, step two (remove) for the groups with no member in
    error; each switch's ``status``, ``detail`` and steps say what happened.
    """
    journal = Journal.create(
        settings.home,
        kind=kind,
        tenant=str(settings.tenant_id),
        meta={"tenant_label": settings.describe(), **meta},
    )
    run_id = journal.run_id
    with journal, tenant_lock(settings.home, str(settings.tenant_id), run_id):
        try:
            adding = [s for s in switches if s.add]
            results = _send(client, journal, adding, "add", names)
            for switch in adding:
                result = results.get(f"{switch.group_id}:add", {})
                if not result_ok(result):
                    switch.status = FAILED
                    switch.request_id = str(result.get("request_id") or "")
                    switch.step_one = "Failed: " + _error(result)
                    switch.note(f"step one failed ({_error(result)}): the group was not changed")
                    continue
                switch.request_id = str(result.get("request_id") or "")
                switch.step_one = f"{_stamp()} added " + ", ".join(
                    names.get(s, s) for s in switch.add
                )
            ready = [s for s in switches if s.status == PLANNED]
            _wait(client, ready, adding=True, wait=wait_for_groups, sleep=sleep, clock=clock)
            second = []
            for switch in ready:
                if not switch.remove:
                    switch.status = APPLIED
                    continue
                pending = _pending(switch, adding=True)
                if switch.errors or pending:
                    switch.status = FAILED
                    why = (
                        f"{len(switch.errors)} members in error"
                        if switch.errors
                        else f"{len(pending)} members not processed after {wait_for_groups:g} s"
                    )
                    switch.step_two = f"not sent: {why}"
                    switch.note(f"{LEFT_ON_BOTH} ({why})")
                else:
                    second.append(switch)
            results = _send(client, journal, second, "remove", names)
            for switch in second:
                result = results.get(f"{switch.group_id}:remove", {})
                if not result_ok(result):
                    switch.status = FAILED
                    switch.step_two = "Failed: " + _error(result)
                    switch.note(f"step two failed ({_error(result)}): {LEFT_ON_BOTH}")
                    continue
                switch.request_id = str(result.get("request_id") or switch.request_id)
                switch.step_two = f"{_stamp()} removed " + ", ".join(
                    names.get(s, s) for s in switch.remove
                )
                switch.status = APPLIED
            done = [s for s in second if s.status == APPLIED]
            _wait(client, done, adding=False, wait=wait_for_groups, sleep=sleep, clock=clock)
            for switch in done:
                left = _pending(switch, adding=False)
                if left:
                    switch.note(
                        f"{len(left)} members still showed the old license after "
                        f"{wait_for_groups:g} s: Entra removes it in the background"
                    )
        except BaseException:
            journal.finish(INTERRUPTED)
            raise
        journal_ops = list(journal.ops())
        journal.finish(
            FINISHED,
            counts={s: sum(1 for x in switches if x.status == s) for s in (APPLIED, FAILED)},
        )
    if changes is not None:
        changes += [(None, line) for line in change_lines(journal_ops)]
    return run_id


def _send(
    client: Any,
    journal: Journal,
    switches: Sequence[GroupSwitch],
    step: str,
    names: Mapping[str, str],
) -> dict[str, dict[str, Any]]:
    if not switches:
        return {}
    ops = []
    for switch in switches:
        if step == "add":
            body: dict[str, Any] = {
                "addLicenses": [{"skuId": s, "disabledPlans": p} for s, p in switch.add.items()],
                "removeLicenses": [],
            }
            what = "add " + ", ".join(names.get(s, s) for s in switch.add)
        else:
            body = {"addLicenses": [], "removeLicenses": list(switch.remove)}
            what = "remove " + ", ".join(names.get(s, s) for s in switch.remove)
        ops.append(
            PlannedOp(
                key=f"{switch.group_id}:{step}",
                row=switch.row,
                user_id=switch.group_id,
                upn=switch.name,
                kind=GROUP_ASSIGN,
                method="POST",
                url=f"/groups/{switch.group_id}/assignLicense",
                body=body,
                wave=0,
                summary=f"{switch.summary}, step {'one' if step == 'add' else 'two'}: {what}",
                before={"group": switch.group_id, "licenses": switch.before},
            )
        )
    journal.add_ops((op.key, op.row, op.as_dict()) for op in ops)
    results, _ = execute_plan(client, ops, journal)
    return results


def _wait(
    client: Any,
    switches: Sequence[GroupSwitch],
    *,
    adding: bool,
    wait: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> None:
    """Poll the groups' members until each step is processed for all, or ``wait`` passes."""
    deadline = clock() + wait
    delay = 0.25
    todo = list(switches)
    while todo:
        for switch in todo:
            _read_members(client, switch)
        todo = [s for s in todo if _pending(s, adding=adding)]
        if not todo or clock() >= deadline:
            return
        sleep(min(delay, max(0.0, deadline - clock())))
        delay = min(5.0, delay * 2)


def _read_members(client: Any, switch: GroupSwitch) -> None:
    switch.members = {}
    switch.errors = {}
    for member in client.get_all(
        f"/groups/{switch.group_id}/members", params={"$select": MEMBER_SELECT, "$top": 999}
    ):
        if "userPrincipalName" not in member:  # a device or nested group: not licensed
            continue
        state = user_state(member)
        switch.members[state.id] = state
        for entry in member.get("licenseAssignmentStates") or []:
            sku = str(entry.get("skuId")).lower()
            error = entry.get("error")
            if (
                str(entry.get("assignedByGroup") or "") == switch.group_id
                and sku in switch.watch
                and error not in (None, "None")
            ):
                switch.errors[state.id] = str(error)


def _pending(switch: GroupSwitch, *, adding: bool) -> list[str]:
    """Members whose licenses do not yet show the step (those in error count as processed)."""
    waiting = []
    for user_id, member in switch.members.items():
        raw = member.raw.get("licenseAssignmentStates") or []
        mine = {
            str(e.get("skuId")).lower(): e
            for e in raw
            if str(e.get("assignedByGroup") or "") == switch.group_id
        }
        if adding:
            for sku in switch.watch:
                entry = mine.get(sku)
                if entry is None or (
                    str(entry.get("state") or "").casefold() in _PENDING
                    and user_id not in switch.errors
                ):
                    waiting.append(user_id)
                    break
        elif any(sku in mine for sku in switch.remove):
            waiting.append(user_id)
    return waiting


def _error(result: Mapping[str, Any]) -> str:
    return ": ".join(str(x) for x in (result.get("code"), result.get("message")) if x) or str(
        result.get("outcome") or "no answer"
    )


def _stamp() -> str:
    return dt.datetime.now().replace(microsecond=0).isoformat(sep=" ")


# -- undo ------------------------------------------------------------------------------------


def undo_group_changes(
    client: Any,
    settings: Settings,
    run_id: str,
    *,
    wait_for_groups: float = 300.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[GroupSwitch]:
    """Put back the licenses of the groups a run (a migration) changed, in the same two steps.

    The licenses each group had before come back with their disabled plans (step one);
    once every member is processed without error, the licenses the run added are removed.
    """
    before: dict[str, tuple[str, dict[str, list[str]]]] = {}
    added: dict[str, set[str]] = {}
    for op in done_ops(settings.home, run_id):
        planned = PlannedOp.from_dict(op.payload)
        if planned.kind != GROUP_ASSIGN:
            continue
        licenses = dict(planned.before.get("licenses") or {})
        before.setdefault(planned.user_id, (planned.upn, licenses))
        for item in planned.body.get("addLicenses") or []:
            if str(item["skuId"]) not in before[planned.user_id][1]:
                added.setdefault(planned.user_id, set()).add(str(item["skuId"]))
    if not before:
        return []
    names = {s.sku_id: s.part_number for s in read_seats(client)}
    switches = []
    for row, (group_id, (name, licenses)) in enumerate(before.items(), start=1):
        now = {
            str(a["skuId"]).lower(): sorted(str(p).lower() for p in a.get("disabledPlans") or [])
            for a in client.get(
                f"/groups/{group_id}", params={"$select": "id,assignedLicenses"}
            ).get("assignedLicenses")
            or []
        }
        back = {sku: plans for sku, plans in licenses.items() if now.get(sku) != plans}
        remove = sorted(sku for sku in added.get(group_id, set()) if sku in now)
        if not back and not remove:
            continue
        switches.append(
            GroupSwitch(
                group_id,
                name,
                back,
                remove,
                now,
                row,
                f"undo of run {run_id} on group '{name}'",
            )
        )
    if not switches:
        return []
    switch_groups(
        client,
        settings,
        switches,
        kind="undo-groups",
        meta={"undo_of": run_id},
        names=names,
        wait_for_groups=wait_for_groups,
        sleep=sleep,
        clock=clock,
    )
    return switches
