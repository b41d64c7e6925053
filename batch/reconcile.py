"""Reconcile: read the tenant back after a run and check every row against what it asked.

A row is *verified* when planning it again against the state read back would change
nothing: its licenses, disabled plans, usage location and group memberships are as asked.
Licenses granted through a group are applied by Entra in the background, so when a run
joined users to licensed groups the read-back waits (up to a timeout) until each such user
shows the group's licenses, active or in error, and reports group-licensing errors such as
``CountViolation`` in the row's detail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from batch.changes import license_change
from batch.plan import Plan, PlanOptions, RowPlan, desire_for
from batch.tenant import GroupInfo, UserState, read_groups, read_users

#: plain words for licenseAssignmentState errors (Microsoft's meanings)
GROUP_ERRORS = {
    "CountViolation": "not enough seats of the license for everyone in the group",
    "MutuallyExclusiveViolation": "a plan conflicts with a plan the user already has",
    "DependencyViolation": "a plan needs another plan the user does not have",
    "ProhibitedInUsageLocationViolation": (
        "the license is not available in the user's usage location"
    ),
    "UniquenessViolation": "the user's proxy address is already taken",
    "Other": "Entra could not assign the license",
}


@dataclass(frozen=True)
class ReadBack:
    """What the tenant says about one row after the run."""

    verified: bool
    licenses_after: str
    problems: tuple[str, ...] = ()  # group-licensing errors and anything not as asked


def read_back(
    client: Any,
    plan: Plan,
    options: PlanOptions,
    *,
    names: Mapping[str, str],
    group_names: Mapping[str, str] | None = None,
    wait_for_groups: float = 120.0,
    poll: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[int, ReadBack]:
    """Read the rows' users (and named groups) back; one :class:`ReadBack` per row with a user.

    :param names: SKU id -> part number, for ``LicensesAfter``.
    :param group_names: group id -> display name, for ``LicensesAfter``.
    """
    rows = [row for row in plan.rows if row.user_id]
    if not rows:
        return {}
    group_keys = {g for row in rows for g in (*row.request.join_groups, *row.request.leave_groups)}
    groups, _ = read_groups(client, group_keys) if group_keys else ({}, {})
    group_names = dict(group_names or {})
    group_names.update({g.id: g.display_name for g in groups.values()})
    users = read_users(client, [row.request.user for row in rows])

    deadline = clock() + wait_for_groups
    while True:
        waiting = [row for row in rows if _waits_for_group(row, users, groups)]
        if not waiting or clock() >= deadline:
            break
        sleep(poll)
        users.update(read_users(client, [row.request.user for row in waiting]))

    unnamed = {
        g for state in users.values() for held in state.licenses.values() for g in held.groups
    } - set(group_names)
    for group_id in sorted(unnamed):  # licensing groups are few; name them for the report
        group_names[group_id] = str(
            client.get(f"/groups/{group_id}", params={"$select": "id,displayName"}).get(
                "displayName"
            )
            or group_id
        )
    return {
        row.row: _check(
            row, users.get(row.request.user.casefold()), groups, options, names, group_names
        )
        for row in rows
    }


def licenses_text(
    state: UserState, names: Mapping[str, str], group_names: Mapping[str, str]
) -> str:
    """``SPE_E3; VISIOCLIENT (group Sales)``: a user's licenses and where they come from."""
    parts = []
    for sku, held in sorted(state.licenses.items(), key=lambda item: names.get(item[0], item[0])):
        text = names.get(sku, sku)
        sources = [group_names.get(g, g) for g in held.groups]
        if sources:
            via = ", ".join(f"group {name}" for name in sources)
            text += f" (direct + {via})" if held.direct else f" ({via})"
        if held.errors:
            text += f" [{', '.join(held.errors)}]"
        parts.append(text)
    return "; ".join(parts)


def _waits_for_group(
    row: RowPlan, users: Mapping[str, UserState], groups: Mapping[str, GroupInfo]
) -> bool:
    state = users.get(row.request.user.casefold())
    if state is None:
        return False
    for name in row.request.join_groups:
        group = groups.get(name.strip().casefold())
        if group is None or state.id not in group.members:
            continue
        for sku in group.sku_ids:
            held = state.licenses.get(sku)
            if held is None or group.id not in held.groups:
                return True
    for name in row.request.leave_groups:  # and licenses of groups left must go
        group = groups.get(name.strip().casefold())
        if group is None or state.id in group.members:
            continue
        if any(group.id in held.groups for held in state.licenses.values()):
            return True
    return False


def _check(
    row: RowPlan,
    state: UserState | None,
    groups: Mapping[str, GroupInfo],
    options: PlanOptions,
    names: Mapping[str, str],
    group_names: Mapping[str, str],
) -> ReadBack:
    if state is None:
        return ReadBack(False, "", ("the user can no longer be found",))
    problems: list[str] = []
    change = license_change(
        desire_for(row.request, options),
        state,
        default_usage_location=options.default_usage_location,
    )
    if change.add or change.remove:
        problems.append("licenses are not as asked")
    if change.usage_location and (row.request.usage_location or change.add):
        problems.append("usage location is not as asked")
    for names_, joining in ((row.request.join_groups, True), (row.request.leave_groups, False)):
        for name in names_:
            group = groups.get(name.strip().casefold())
            if group is not None and (state.id in group.members) != joining:
                problems.append(
                    f"{'not a member of' if joining else 'still a member of'} {group.display_name}"
                )
    for sku, held in state.licenses.items():
        for error in held.errors:
            via = ", ".join(group_names.get(g, g) for g in held.groups) or "direct"
            problems.append(
                f"group licensing error {error} on {names.get(sku, sku)} ({via}): "
                f"{GROUP_ERRORS.get(error, GROUP_ERRORS['Other'])}"
            )
    asked_ok = not any(not p.startswith("group licensing error") for p in problems)
    return ReadBack(asked_ok, licenses_text(state, names, group_names), tuple(problems))
