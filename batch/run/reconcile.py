"""Reconcile: read the tenant back after a run and check every row against what it asked.

A row is *verified* when planning it again against the state read back would change
nothing: its licenses, disabled plans, usage location and group memberships are as asked.
Licenses granted through a group are applied by Entra in the background, so when a run
joined users to licensed groups the read-back waits (up to a timeout) until each such user
shows the group's licenses, active or in error, and reports group-licensing errors such as
``CountViolation`` in the row's detail.

Eventual consistency: "A successful write to Microsoft Entra does not guarantee that an
immediate read will reflect that change" (graph-reference.md section 4). So a row that was
written and does not read back as asked is not called unverified at once: its user is
read again with a bounded backoff (0.25 s doubling to 2 s) until it matches or the budget
(``verify_wait``, :data:`DEFAULT_VERIFY_WAIT` seconds, ``--verify-wait`` on ``apply`` and
``resume``) is spent. Only rows that were written are waited for: a row that failed or
needed no change cannot be made right by waiting. How long the read-back waited is returned
(:class:`ReadBackResult`) for the report's Summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from batch.config import DEFAULT_VERIFY_WAIT
from batch.run.changes import license_change
from batch.run.plan import Plan, PlanOptions, RowPlan, desire_for
from batch.run.tenant import (
    GroupInfo,
    UserState,
    name_licensing_groups,
    read_groups,
    read_users,
)

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


#: the first pause before a re-read, doubled after each one up to the cap
VERIFY_FIRST_DELAY = 0.25
VERIFY_MAX_DELAY = 2.0
#: added to the problems of a written row that still does not read back as asked
STILL_NOT_AS_ASKED = (
    "still not as asked after the read-back waited {wait:g} s for "
    "Entra to show the change (check again later, or raise --verify-wait)"
)


@dataclass(frozen=True)
class ReadBack:
    """What the tenant says about one row after the run."""

    verified: bool
    licenses_after: str
    problems: tuple[str, ...] = ()  # group-licensing errors and anything not as asked


@dataclass
class ReadBackResult:
    """Every row's :class:`ReadBack`, and how long the read-back waited for the tenant."""

    rows: dict[int, ReadBack] = field(default_factory=dict)
    #: seconds spent waiting for group licensing and for written rows to read back as asked
    waited: float = 0.0
    #: rows read again because they did not match at first (eventual consistency)
    reread_rows: int = 0


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

    The same as :func:`reconcile_rows` with its consistency wait, returning the rows only.
    """
    return reconcile_rows(
        client,
        plan,
        options,
        names=names,
        group_names=group_names,
        wait_for_groups=wait_for_groups,
        poll=poll,
        sleep=sleep,
        clock=clock,
    ).rows


def reconcile_rows(
    client: Any,
    plan: Plan,
    options: PlanOptions,
    *,
    names: Mapping[str, str],
    group_names: Mapping[str, str] | None = None,
    wait_for_groups: float = 120.0,
    poll: float = 1.0,
    written: Collection[int] | None = None,
    verify_wait: float = DEFAULT_VERIFY_WAIT,
    known: Mapping[str, UserState] | None = None,
    sent: Collection[int] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ReadBackResult:
    """Read the rows' users (and named groups) back, waiting a bounded time for them to match.

    :param names: SKU id -> part number, for ``LicensesAfter``.
    :param group_names: group id -> display name, for ``LicensesAfter``.
    :param written: the rows whose writes were applied: only these are re-read while they
        do not match (default: every row the plan had writes for).
    :param verify_wait: seconds the re-reads may take in all (0: no re-read).
    :param known: the users as read when planning, by casefolded name; with ``sent``, only
        the users of rows something was sent for are read again (the others' state is
        what the run found), else every row's user is.
    :param sent: the rows at least one write was sent for (whatever its outcome).
    """
    rows = [row for row in plan.rows if row.user_id]
    if not rows:
        return ReadBackResult()
    group_keys = {g for row in rows for g in (*row.request.join_groups, *row.request.leave_groups)}
    users, groups = _read_rows(client, rows, group_keys, known, sent)
    group_names = dict(group_names or {})
    group_names.update({g.id: g.display_name for g in groups.values()})

    waited = _wait_for_group_licensing(
        client, rows, users, groups, timeout=wait_for_groups, poll=poll, sleep=sleep, clock=clock
    )
    if written is None:
        written = {op.row for op in plan.ops}
    started = clock()
    reread = _wait_until_consistent(
        client,
        [row for row in rows if row.row in written],
        users,
        groups,
        options,
        verify_wait=verify_wait,
        sleep=sleep,
        clock=clock,
    )
    if reread:
        waited += clock() - started

    name_licensing_groups(client, users, group_names)
    checked = {
        row.row: _check(
            row, users.get(row.request.user.casefold()), groups, options, names, group_names
        )
        for row in rows
    }
    _note_still_not_as_asked(checked, reread, verify_wait)
    return ReadBackResult(checked, round(max(0.0, waited), 1), len(reread))


def _read_rows(
    client: Any,
    rows: list[RowPlan],
    group_keys: set[str],
    known: Mapping[str, UserState] | None,
    sent: Collection[int] | None,
) -> tuple[dict[str, UserState], dict[str, GroupInfo]]:
    """The rows' users (read again, or as known when nothing was sent for them) and the
    groups they name, read side by side."""
    users: dict[str, UserState] = {}
    to_read = rows
    if known is not None and sent is not None:
        keys = {row.request.user.casefold() for row in rows}
        users.update({key: state for key, state in known.items() if key in keys})
        to_read = [
            row for row in rows if row.row in sent or row.request.user.casefold() not in known
        ]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-back") as pool:
        groups_read = pool.submit(read_groups, client, group_keys) if group_keys else None
        users.update(read_users(client, [row.request.user for row in to_read]))
        groups = groups_read.result()[0] if groups_read else {}
    return users, groups


def _wait_for_group_licensing(
    client: Any,
    rows: list[RowPlan],
    users: dict[str, UserState],
    groups: Mapping[str, GroupInfo],
    *,
    timeout: float,
    poll: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> float:
    """Re-read users every ``poll`` seconds until Entra has applied their groups' licenses.

    Updates ``users`` in place; returns the seconds waited (0 when nothing was waited for).
    """
    started, polled = clock(), False
    deadline = started + timeout
    while True:
        waiting = [row for row in rows if _waits_for_group(row, users, groups)]
        if not waiting or clock() >= deadline:
            break
        sleep(poll)
        polled = True
        users.update(read_users(client, [row.request.user for row in waiting]))
    return clock() - started if polled else 0.0


def _note_still_not_as_asked(
    checked: dict[int, ReadBack], reread: list[RowPlan], verify_wait: float
) -> None:
    """Say in the problems of a re-read row that is still unverified that the read-back waited."""
    for row in reread:
        back = checked[row.row]
        if not back.verified:
            checked[row.row] = ReadBack(
                back.verified,
                back.licenses_after,
                (*back.problems, STILL_NOT_AS_ASKED.format(wait=verify_wait)),
            )


def _wait_until_consistent(
    client: Any,
    rows: list[RowPlan],
    users: dict[str, UserState],
    groups: dict[str, GroupInfo],
    options: PlanOptions,
    *,
    verify_wait: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> list[RowPlan]:
    """Re-read written rows that do not match yet, with backoff, within ``verify_wait``.

    The users (and the member lists of the groups those rows join or leave) are read
    again. Updates ``users`` and ``groups`` in place; returns the rows that needed at least
    one re-read.
    """
    pending = [row for row in rows if not _matches(row, users, groups, options)]
    reread = list(pending)
    started, delay = clock(), VERIFY_FIRST_DELAY
    while pending:
        remaining = verify_wait - (clock() - started)
        if remaining <= 0:
            break
        sleep(min(delay, remaining))
        delay = min(delay * 2, VERIFY_MAX_DELAY)
        users.update(read_users(client, [row.request.user for row in pending]))
        keys = {g for row in pending for g in (*row.request.join_groups, *row.request.leave_groups)}
        if keys:
            groups.update(read_groups(client, keys)[0])
        pending = [row for row in pending if not _matches(row, users, groups, options)]
    return reread


def _matches(
    row: RowPlan,
    users: Mapping[str, UserState],
    groups: Mapping[str, GroupInfo],
    options: PlanOptions,
) -> bool:
    state = users.get(row.request.user.casefold())
    return state is not None and _check(row, state, groups, options, {}, {}).verified


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
