"""Migrate, a group's switch: change a licensed group's license in two steps, under a journal.

    step one: add the new license -> wait for Entra to process every member ->
    step two, only if no member is in error: remove the old license

Each step is one ``POST /groups/{id}/assignLicense`` (answered 202; the change is processed
asynchronously) sent through the batch engine like every write: journaled in a run of its
own (listed among the migration's parts). Waiting polls the group's members
(``licenseAssignmentStates``) until each shows the step as processed, or until
``wait_for_groups`` seconds have passed.

Chosen where Graph documents nothing: a member counts as processed when its state for the
group's SKU is anything but ``ActivePending``/``PendingInput`` or when it carries an error;
polling starts at a quarter second and doubles up to 5 s.

:func:`undo_group_changes` reverts the groups a run changed the same way: the old licenses
added back with the disabled plans they had, processing waited for, then the new removed.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from batch.config import Settings
from batch.jobs.onboarding.outcomes import change_lines
from batch.run.execute import execute_plan, result_ok
from batch.run.history import GROUP_ASSIGN, done_ops
from batch.run.journal import FINISHED, INTERRUPTED, Journal, tenant_lock
from batch.run.plan import PlannedOp
from batch.run.tenant import UserState, read_seats, user_state
from batch.status import RowStatus

__all__ = ["LEFT_ON_BOTH", "GroupSwitch", "switch_groups", "undo_group_changes"]

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
    status: str = RowStatus.PLANNED
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
    steps = _Steps(client, journal, names, wait_for_groups, sleep, clock)
    with journal, tenant_lock(settings.home, str(settings.tenant_id), run_id):
        try:
            steps.add(switches)
            steps.remove([s for s in switches if s.status == RowStatus.PLANNED])
        except BaseException:
            journal.finish(INTERRUPTED)
            raise
        journal_ops = list(journal.ops())
        statuses = (RowStatus.APPLIED, RowStatus.FAILED)
        journal.finish(
            FINISHED, counts={s: sum(1 for x in switches if x.status == s) for s in statuses}
        )
    if changes is not None:
        changes += [(None, line) for line in change_lines(journal_ops)]
    return run_id


@dataclass
class _Steps:
    """The two steps of :func:`switch_groups`, sharing the client, journal and waiting."""

    client: Any
    journal: Journal
    names: Mapping[str, str]
    wait: float
    sleep: Callable[[float], None]
    clock: Callable[[], float]

    def add(self, switches: Sequence[GroupSwitch]) -> None:
        """Step one: add the new licenses; then wait for every member to be processed."""
        names = self.names
        adding = [s for s in switches if s.add]
        results = _send(self.client, self.journal, adding, "add", names)
        for switch in adding:
            result = results.get(f"{switch.group_id}:add", {})
            switch.request_id = str(result.get("request_id") or "")
            if not result_ok(result):
                switch.status = RowStatus.FAILED
                switch.step_one = "Failed: " + _error(result)
                switch.note(f"step one failed ({_error(result)}): the group was not changed")
                continue
            switch.step_one = f"{_stamp()} added " + ", ".join(names.get(s, s) for s in switch.add)
        ready = [s for s in switches if s.status == RowStatus.PLANNED]
        self._wait_for(ready, adding=True)

    def remove(self, ready: Sequence[GroupSwitch]) -> None:
        """Step two, for the groups whose members all took step one without error."""
        second = []
        for switch in ready:
            if not switch.remove:
                switch.status = RowStatus.APPLIED
                continue
            pending = _pending(switch, adding=True)
            if switch.errors or pending:
                switch.status = RowStatus.FAILED
                why = (
                    f"{len(switch.errors)} members in error"
                    if switch.errors
                    else f"{len(pending)} members not processed after {self.wait:g} s"
                )
                switch.step_two = f"not sent: {why}"
                switch.note(f"{LEFT_ON_BOTH} ({why})")
            else:
                second.append(switch)
        results = _send(self.client, self.journal, second, "remove", self.names)
        for switch in second:
            result = results.get(f"{switch.group_id}:remove", {})
            if not result_ok(result):
                switch.status = RowStatus.FAILED
                switch.step_two = "Failed: " + _error(result)
                switch.note(f"step two failed ({_error(result)}): {LEFT_ON_BOTH}")
                continue
            switch.request_id = str(result.get("request_id") or switch.request_id)
            switch.step_two = f"{_stamp()} removed " + ", ".join(
                self.names.get(s, s) for s in switch.remove
            )
            switch.status = RowStatus.APPLIED
        done = [s for s in second if s.status == RowStatus.APPLIED]
        self._wait_for(done, adding=False)
        for switch in done:
            left = _pending(switch, adding=False)
            if left:
                switch.note(
                    f"{len(left)} members still showed the old license after "
                    f"{self.wait:g} s: Entra removes it in the background"
                )

    def _wait_for(self, switches: Sequence[GroupSwitch], *, adding: bool) -> None:
        _wait(
            self.client, switches, adding=adding, wait=self.wait, sleep=self.sleep, clock=self.clock
        )


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
