"""Execute: send a plan's operations through the batch engine, journaling each one.

The plan's :class:`~batch.run.plan.PlannedOp` values become engine
:class:`~batch.graph.engine.Operation` values with read-back hooks; every operation is marked
``sent`` in the journal before its request goes out and ``done`` with its result after.
Waves run in order (seats given back before seats taken). Operations already ``done`` in the
journal (a resumed run) are not sent again.

Group membership writes are idempotent in effect: "already a member" (400) on a join and
"not found" (404) on a leave mean the user is already as asked, and count as applied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from batch.graph.client import GraphClient
from batch.graph.engine import (
    EngineSettings,
    EngineStats,
    Operation,
    Outcome,
    ReadBack,
    Result,
    run_operations,
)
from batch.run.journal import Journal
from batch.run.plan import PlannedOp

log = logging.getLogger(__name__)

_ALREADY_MEMBER = "already exist"
#: the note on an operation whose outcome a read of the tenant settled
SETTLED_NOTE = "answer lost; the tenant shows the change"
_UNFINISHED = {Outcome.NOT_ATTEMPTED, Outcome.STOPPED, Outcome.UNKNOWN}


def operation_for(op: PlannedOp) -> Operation:
    """The engine operation for one planned write, with its read-back hook."""
    if op.kind == "assignLicense":
        prerequisite = None
        if op.usage_location:
            prerequisite = _usage_location_op(
                f"{op.key} (usageLocation)", op.user_id, op.usage_location
            )
        return Operation(
            key=op.key,
            method=op.method,
            url=op.url,
            body=op.body,
            prerequisite=prerequisite,
            verify=ReadBack(
                f"/users/{op.user_id}?$select=id,assignedLicenses,licenseAssignmentStates",
                _license_check(op.body),
            ),
            usage_location_set=bool(op.usage_location),
            context=op,
        )
    if op.kind == "groupAssignLicense":
        # a group's licenses change at once (202); its members follow in the background,
        # which the caller waits for (see batch.jobs.migrate.groups)
        return Operation(
            key=op.key,
            method=op.method,
            url=op.url,
            body=op.body,
            verify=ReadBack(
                f"/groups/{op.user_id}?$select=id,assignedLicenses", _license_check(op.body)
            ),
            context=op,
        )
    if op.kind == "usageLocation":
        base = _usage_location_op(op.key, op.user_id, str(op.body["usageLocation"]))
        return Operation(
            key=base.key,
            method=base.method,
            url=base.url,
            body=base.body,
            verify=base.verify,
            context=op,
        )
    group = str(op.before.get("group"))
    joining = op.kind == "joinGroup"
    return Operation(
        key=op.key,
        method=op.method,
        url=op.url,
        body=op.body,
        context=op,
        verify=lambda client: _is_member(client, group, op.user_id) == joining,
    )


def execute_plan(
    client: GraphClient,
    ops: Iterable[PlannedOp],
    journal: Journal,
    *,
    settings: EngineSettings | None = None,
    on_progress: Callable[[EngineStats], None] | None = None,
    on_done: Callable[[str], None] | None = None,
) -> tuple[dict[str, dict[str, Any]], list[EngineStats]]:
    """Run the operations not yet done, wave by wave; return every result by key, and stats.

    Results of operations finished by an earlier process of the same run come from the
    journal, so the caller sees the whole run. ``on_done`` is told the key of each
    operation whose result was journaled, as it is.
    """
    ops = list(ops)
    done = {j.key: j.result or {} for j in journal.ops("done")}
    stats: list[EngineStats] = []
    journaled: dict[str, dict[str, Any]] = {}  # as journaled by this process
    for wave in sorted({op.wave for op in ops}):
        todo = [operation_for(op) for op in ops if op.wave == wave and op.key not in done]
        if not todo:
            continue
        by_key = {operation.key: operation for operation in todo}

        def record(operation: Operation, result: Result) -> None:
            # Operations the run did not finish stay open in the journal ("planned", or
            # "sent" with an unknown outcome) so that resume takes them up again.
            if result.outcome not in _UNFINISHED:
                journaled[operation.key] = data = _settled(operation, result)
                journal.mark_done(operation.key, data)
                if on_done is not None:
                    on_done(operation.key)

        results, wave_stats = run_operations(
            client,
            todo,
            settings=settings,
            total=len(todo),
            on_sent=lambda operation: journal.mark_sent(operation.key),
            on_result=record,
            on_progress=on_progress,
            grouped=journal.transaction,
        )
        stats.append(wave_stats)
        for key, result in results.items():
            done[key] = journaled[key] if key in journaled else _settled(by_key[key], result)
    return done, stats


@dataclass
class Settlement:
    """What reading the tenant made of the operations whose answer was lost."""

    done: list[str] = field(default_factory=list)
    not_done: list[str] = field(default_factory=list)
    #: the read failed: still unknown
    unsettled: list[str] = field(default_factory=list)


def settle(client: GraphClient, journal: Journal, *, wait: float = 0.0) -> Settlement:
    """Settle every sent, not-done operation by reading the tenant: done, or planned again.

    An operation whose change is not shown yet is read again until ``wait`` seconds have
    passed (Entra is eventually consistent), then recorded as not done, so resume sends it
    again and undo leaves it alone. One whose read fails stays unsettled (``sent``).
    """
    result = Settlement()
    todo = {op.key: operation_for(PlannedOp.from_dict(op.payload)) for op in journal.to_settle()}
    deadline = time.monotonic() + wait
    while todo:
        for key, operation in list(todo.items()):
            shown = _shows(client, operation)
            if shown is None:
                result.unsettled.append(key)
            elif shown:
                journal.mark_done(
                    key, {"outcome": Outcome.VERIFIED_APPLIED.value, "note": SETTLED_NOTE}
                )
                result.done.append(key)
            else:
                continue
            del todo[key]
        if not todo or time.monotonic() >= deadline:
            break
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    for key in todo:
        journal.mark_not_done(key)
        result.not_done.append(key)
    return result


def _shows(client: GraphClient, operation: Operation) -> bool | None:
    """Whether the tenant shows the operation's change; None when it cannot be read."""
    if operation.verify is None:
        return None
    try:
        return bool(operation.verify(client))
    except Exception as exc:  # a failed read leaves the operation unsettled, it never guesses
        log.warning("%s: cannot read the tenant to settle it: %s", operation.key, exc)
        return None


def _settled(operation: Operation, result: Result) -> dict[str, Any]:
    """The result as journaled, with idempotent group answers counted as applied.

    A successful answer's body (the whole user object) is dropped: the read-back is what
    tells the user's state, and the journal stays small. Error bodies are kept.
    """
    data = result.as_dict(body=not result.ok)
    op = operation.context
    if isinstance(op, PlannedOp) and result.outcome is Outcome.FAILED:
        already = (
            op.kind == "joinGroup"
            and result.status == 400
            and _ALREADY_MEMBER in (result.message or "")
        ) or (op.kind == "leaveGroup" and result.status == 404)
        if already:
            data["outcome"] = Outcome.APPLIED.value
            data["note"] = "already as asked"
    return data


def result_ok(result: Mapping[str, Any]) -> bool:
    """Whether a journaled result means the change is in place."""
    return str(result.get("outcome")) in (Outcome.APPLIED.value, Outcome.VERIFIED_APPLIED.value)


def _usage_location_op(key: str, user_id: str, location: str) -> Operation:
    return Operation(
        key=key,
        method="PATCH",
        url=f"/users/{user_id}",
        body={"usageLocation": location},
        verify=ReadBack(
            f"/users/{user_id}?$select=id,usageLocation",
            lambda user: str(user.get("usageLocation") or "").upper() == location.upper(),
        ),
    )


def _license_check(body: Mapping[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """A predicate: the user's direct licenses (or a group's) show this assignLicense's effect."""
    adds = {
        str(a["skuId"]).lower(): sorted(str(p).lower() for p in a.get("disabledPlans") or [])
        for a in body.get("addLicenses") or []
    }
    removes = {str(s).lower() for s in body.get("removeLicenses") or []}

    def check(user: dict[str, Any]) -> bool:
        states = user.get("licenseAssignmentStates")
        if states is None:  # no states: every assigned license is taken as direct
            direct = {
                str(a["skuId"]).lower(): a.get("disabledPlans") or []
                for a in user.get("assignedLicenses") or []
            }
        else:
            direct = {
                str(s["skuId"]).lower(): s.get("disabledPlans") or []
                for s in states
                if not s.get("assignedByGroup")
            }
        held = {sku: sorted(str(p).lower() for p in plans) for sku, plans in direct.items()}
        return all(held.get(sku) == plans for sku, plans in adds.items()) and not (
            removes & set(held)
        )

    return check


def _is_member(client: GraphClient, group_id: str, user_id: str) -> bool:
    return any(
        str(member.get("id")) == user_id
        for member in client.get_all(
            f"/groups/{group_id}/members", params={"$select": "id", "$top": 999}
        )
    )
