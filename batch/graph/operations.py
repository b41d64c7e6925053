"""Operations and results: what the engine is asked to do, and what became of it.

An :class:`Operation` is one Graph write with a stable key (the journal records it under
that key), an optional prerequisite, and a verify hook that reads the state back when the
outcome is unknown. A :class:`Result` is its final state. :func:`assign_license` builds the
usual one: ``assignLicense`` by object id with a read-back, and a ``PATCH usageLocation``
prerequisite when asked.

A prerequisite never travels with ``dependsOn``: Graph refuses a whole ``$batch`` whose
dependencies are not all parallel, all serial or all on one item (graph-reference.md
sections 1 and 11). The engine sends it first as a plain item of a parallel batch, and the
operation in a later batch once the prerequisite is acknowledged; on 2,000 operations, 30 %
with a prerequisite, that took 17.7 s in 186 requests against 20.3 s in 783 requests for a
prerequisite-and-operation chain in a batch of its own (``scripts/bench_prerequisites.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batch.graph.client import GraphClient

#: a verify hook: reads the state back, True when the operation's effect is in place
Verifier = Callable[["GraphClient"], bool]


class Outcome(enum.StrEnum):
    """What finally happened to one operation."""

    APPLIED = "applied"
    #: no answer, then the read-back showed the change in place
    VERIFIED_APPLIED = "unknown-verified-applied"
    #: no answer, the read-back showed it missing, and no retry was left
    VERIFIED_NOT_APPLIED = "unknown-verified-not-applied"
    #: no answer and no way to read the state back (or the read-back failed)
    UNKNOWN = "unknown"
    FAILED = "failed"  #: Graph refused it for good (4xx)
    EXHAUSTED = "failed-retries-exhausted"  #: still throttled or failing after every retry
    STOPPED = "stopped"  #: sent, not applied, and the run stopped before the next try
    NOT_ATTEMPTED = "not-attempted"  #: the run stopped before it was sent

    @property
    def done(self) -> bool:
        """Whether the change is in place."""
        return self in (Outcome.APPLIED, Outcome.VERIFIED_APPLIED)


@dataclass(frozen=True, eq=False)
class Operation:
    """One Graph write, as the planner asks for it.

    :param key: stable and unique in a run, e.g. ``"row 12: assignLicense user X"``; the
        journal records operations under it.
    :param url: relative to the version root, e.g. ``/users/{id}/assignLicense``.
    :param prerequisite: sent first, alone, in an earlier ``$batch`` than the operation (never
        with ``dependsOn``); the operation is sent once it is acknowledged or read back in
        place. Expected to be idempotent (``PATCH``): sent again after a passing failure, and
        its ``verify`` hook reads it back after an unknown outcome (without a hook it is
        simply sent again). If it fails for good the operation fails with its error, unsent.
    :param verify: reads the state back after an unknown outcome (see :class:`ReadBack`).
    :param usage_location_set: this run set the user's usage location just before (outside
        this operation), so "invalid usage location" is replication lag, not a real error.
    :param context: free for the caller (row number, planned change); the engine ignores it.
    """

    key: str
    method: str
    url: str
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    prerequisite: Operation | None = None
    verify: Verifier | None = None
    usage_location_set: bool = False
    context: Any = None

    def item(self, item_id: str) -> dict[str, Any]:
        """This operation as one ``$batch`` request item."""
        item: dict[str, Any] = {"id": item_id, "method": self.method.upper(), "url": self.url}
        headers = dict(self.headers)
        if self.body is not None:
            item["body"] = self.body
            headers.setdefault("Content-Type", "application/json")
        if headers:
            item["headers"] = headers
        return item

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description for the journal (no hooks, no context)."""
        data: dict[str, Any] = {
            "key": self.key,
            "method": self.method,
            "url": self.url,
            "body": self.body,
        }
        if self.prerequisite is not None:
            data["prerequisite"] = self.prerequisite.describe()
        return data


@dataclass
class Result:
    """The final state of one operation."""

    key: str
    outcome: Outcome
    status: int | None = None
    code: str | None = None
    message: str | None = None
    request_id: str | None = None
    attempts: int = 0  #: times the operation was sent (its prerequisite counts in its own)
    body: Any = None
    prerequisite: Result | None = None
    verified: bool | None = None  #: the read-back's answer, when there was one

    @property
    def ok(self) -> bool:
        """Whether the change is in place."""
        return self.outcome.done

    def as_dict(self, *, body: bool = True) -> dict[str, Any]:
        """A JSON-ready copy for the journal and the report (``body`` shared, not copied;
        left out with ``body=False``, the prerequisite's too)."""
        data = {name: getattr(self, name) for name in _RESULT_FIELDS}
        data["outcome"] = self.outcome.value
        if not body:
            del data["body"]
        if self.prerequisite is not None:
            data["prerequisite"] = self.prerequisite.as_dict(body=body)
        return data


_RESULT_FIELDS = tuple(f.name for f in fields(Result))


@dataclass(frozen=True)
class ReadBack:
    """A verify hook made of one GET and a predicate on its JSON body."""

    url: str
    predicate: Callable[[dict[str, Any]], bool]

    def __call__(self, client: GraphClient) -> bool:
        """GET ``url`` and apply the predicate."""
        return bool(self.predicate(client.get(self.url)))


def assign_license(
    key: str,
    user_id: str,
    *,
    add: Mapping[str, Iterable[str]] | None = None,
    remove: Iterable[str] = (),
    usage_location: str | None = None,
    context: Any = None,
) -> Operation:
    """An ``assignLicense`` for one user by object id, with a read-back and, when asked, a
    ``PATCH usageLocation`` prerequisite.

    :param add: skuId -> disabled service plan ids for each license the user must hold.
    :param remove: skuIds to take away (in the same call: a swap leaves no gap).
    """
    add = {sku.lower(): sorted(p.lower() for p in plans) for sku, plans in (add or {}).items()}
    removed = sorted(s.lower() for s in remove)
    body = {
        # Both keys are required by Graph, even when empty.
        "addLicenses": [{"skuId": sku, "disabledPlans": plans} for sku, plans in add.items()],
        "removeLicenses": removed,
    }
    prerequisite = None
    if usage_location:
        prerequisite = Operation(
            key=f"{key} (usageLocation {usage_location})",
            method="PATCH",
            url=f"/users/{user_id}",
            body={"usageLocation": usage_location},
            verify=ReadBack(
                f"/users/{user_id}?$select=usageLocation",
                lambda user: user.get("usageLocation") == usage_location,
            ),
        )

    def holds_licenses(user: dict[str, Any]) -> bool:
        held = {
            str(lic.get("skuId", "")).lower(): sorted(
                str(p).lower() for p in lic.get("disabledPlans") or []
            )
            for lic in user.get("assignedLicenses") or []
        }
        return all(held.get(sku) == plans for sku, plans in add.items()) and not any(
            sku in held for sku in removed
        )

    return Operation(
        key=key,
        method="POST",
        url=f"/users/{user_id}/assignLicense",
        body=body,
        prerequisite=prerequisite,
        verify=ReadBack(f"/users/{user_id}?$select=id,assignedLicenses", holds_licenses),
        context=context,
    )
