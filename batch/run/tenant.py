"""Tenant state: what the tenant holds, read from Graph JSON into plain values.

The planner, the true-up and the reconciler all read the same facts: per SKU the seats
bought and used, per user the licenses held and *how* (directly or through which groups).
Functions here are pure (Graph JSON in, dataclasses out) so they are easy to test; the
reading itself goes through the Graph client.

Seats: Graph has no "available" field. Following Microsoft's own scripts and the
licenseUnitsDetail docs, free seats are ``prepaidUnits.enabled - consumedUnits``: units in
``warning`` (grace period after expiry), ``suspended`` and ``lockedOut`` cannot take new
assignments, and a user holding a SKU both directly and through a group consumes one seat.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

#: the user properties every stage needs; assignedLicenses etc. are returned only on $select
USER_SELECT = (
    "id,userPrincipalName,displayName,accountEnabled,usageLocation,department,"
    "assignedLicenses,licenseAssignmentStates"
)


@dataclass(frozen=True)
class SkuSeats:
    """One subscribed SKU's seat figures."""

    sku_id: str
    part_number: str
    applies_to: str
    capability_status: str
    enabled: int
    warning: int
    suspended: int
    locked_out: int
    consumed: int
    service_plans: tuple[tuple[str, str], ...] = ()  # (servicePlanId, servicePlanName)

    @property
    def free(self) -> int:
        """Seats that can take a new assignment now (never negative)."""
        return max(0, self.enabled - self.consumed)

    @property
    def purchased(self) -> int:
        """Units bought and still in force or in grace (enabled + warning)."""
        return self.enabled + self.warning

    @property
    def user_assignable(self) -> bool:
        return self.applies_to.lower() == "user"


def seats_from_skus(skus: Iterable[Mapping[str, Any]]) -> list[SkuSeats]:
    """Seat figures for every SKU of a ``GET /subscribedSkus`` answer, by part number."""
    result = []
    for sku in skus:
        units = sku.get("prepaidUnits") or {}
        result.append(
            SkuSeats(
                sku_id=str(sku["skuId"]).lower(),
                part_number=str(sku.get("skuPartNumber") or sku["skuId"]),
                applies_to=str(sku.get("appliesTo") or "User"),
                capability_status=str(sku.get("capabilityStatus") or "Enabled"),
                enabled=int(units.get("enabled") or 0),
                warning=int(units.get("warning") or 0),
                suspended=int(units.get("suspended") or 0),
                locked_out=int(units.get("lockedOut") or 0),
                consumed=int(sku.get("consumedUnits") or 0),
                service_plans=tuple(
                    (str(p["servicePlanId"]).lower(), str(p.get("servicePlanName") or ""))
                    for p in sku.get("servicePlans") or []
                ),
            )
        )
    return sorted(result, key=lambda s: s.part_number.lower())


@dataclass(frozen=True)
class HeldLicense:
    """A SKU a user holds: its disabled plans and where it comes from."""

    sku_id: str
    disabled_plans: frozenset[str]
    direct: bool
    groups: tuple[str, ...] = ()  # ids of groups the license is inherited from
    errors: tuple[str, ...] = ()  # licenseAssignmentStates errors (CountViolation, ...)

    @property
    def inherited(self) -> bool:
        return bool(self.groups)


@dataclass(frozen=True)
class UserState:
    """What the tenant says about one user, as far as licensing goes."""

    id: str
    upn: str
    display_name: str
    account_enabled: bool
    usage_location: str | None
    licenses: Mapping[str, HeldLicense] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def direct_skus(self) -> set[str]:
        return {sku for sku, held in self.licenses.items() if held.direct}

    def holds(self, sku_id: str) -> bool:
        return sku_id in self.licenses


def user_state(user: Mapping[str, Any]) -> UserState:
    """A :class:`UserState` from a Graph user selected with :data:`USER_SELECT`.

    ``licenseAssignmentStates`` tells direct from inherited; when it is absent (older
    answers), every assigned license is taken as direct.
    """
    states = user.get("licenseAssignmentStates")
    licenses: dict[str, HeldLicense] = {}
    if states:
        by_sku: dict[str, list[Mapping[str, Any]]] = {}
        for state in states:
            by_sku.setdefault(str(state["skuId"]).lower(), []).append(state)
        assigned = {
            str(a["skuId"]).lower(): frozenset(str(p).lower() for p in a.get("disabledPlans") or [])
            for a in user.get("assignedLicenses") or []
        }
        for sku, entries in by_sku.items():
            direct = [e for e in entries if not e.get("assignedByGroup")]
            groups = tuple(str(e["assignedByGroup"]) for e in entries if e.get("assignedByGroup"))
            errors = tuple(str(e["error"]) for e in entries if e.get("error") not in (None, "None"))
            source = direct[0] if direct else entries[0]
            disabled = assigned.get(sku)
            if disabled is None or direct:
                disabled = frozenset(str(p).lower() for p in source.get("disabledPlans") or [])
            licenses[sku] = HeldLicense(sku, disabled, bool(direct), groups, errors)
    else:
        for assigned_license in user.get("assignedLicenses") or []:
            sku = str(assigned_license["skuId"]).lower()
            disabled = frozenset(
                str(p).lower() for p in assigned_license.get("disabledPlans") or []
            )
            licenses[sku] = HeldLicense(sku, disabled, True)
    enabled = user.get("accountEnabled")
    return UserState(
        id=str(user["id"]),
        upn=str(user.get("userPrincipalName") or ""),
        display_name=str(user.get("displayName") or ""),
        account_enabled=True if enabled is None else bool(enabled),
        usage_location=(user.get("usageLocation") or None),
        licenses=licenses,
        raw=user,
    )


def read_seats(client: Any) -> list[SkuSeats]:
    """Read ``GET /subscribedSkus`` through a Graph client and return seat figures."""
    return seats_from_skus(client.get_all("/subscribedSkus"))


@dataclass(frozen=True)
class GroupInfo:
    """A group the sheet names: its licenses, whether it can be joined, and its members."""

    id: str
    display_name: str
    sku_ids: frozenset[str]
    dynamic: bool
    members: frozenset[str]  # user object ids (direct members)


#: users per page when the whole directory is paged
PAGE_SIZE = 999
#: a page of 999 users takes about a round trip plus this long to build and carry (measured
#: on the simulated tenant; Graph's own pages are slower, which only favours lookups)
PAGE_EXTRA_SECONDS = 0.1
GROUP_SELECT = "id,displayName,assignedLicenses,groupTypes,securityEnabled"


def lookup_seconds(users: int, batch_round_trip: float) -> float:
    """Expected wall time of looking ``users`` up: 15 to a lookup, 20 lookups to a ``$batch``,
    :data:`batch.graph.reads.MAX_IN_FLIGHT` batches in flight, paced to the read budget."""
    from batch.graph.client import MAX_IN_VALUES
    from batch.graph.reads import MAX_BATCH_ITEMS, MAX_IN_FLIGHT, READ_RU_BUDGET, RU_WINDOW

    lookups = -(-users // MAX_IN_VALUES)
    batches = -(-lookups // MAX_BATCH_ITEMS)
    rounds = -(-batches // MAX_IN_FLIGHT)
    windows = -(-max(0, lookups - READ_RU_BUDGET) // READ_RU_BUDGET)  # 1 RU a lookup
    return rounds * batch_round_trip + windows * RU_WINDOW


def paging_seconds(directory: int, round_trip: float) -> float:
    """Expected wall time of paging a directory of ``directory`` users (pages come one by one)."""
    return max(1, -(-directory // PAGE_SIZE)) * (round_trip + PAGE_EXTRA_SECONDS)


def choose_reading(
    users: int, *, round_trip: float, batch_round_trip: float, directory: int | None = None
) -> str:
    """How to read ``users`` named users: ``"lookup"``, ``"page"`` the whole directory, or
    ``"count"``: the directory's size is needed to tell (it costs a round trip itself).

    By expected wall time, not by request count: lookups go in parallel, pages one after
    the other. When paging even a directory of just these users would not save more than
    the round trip that asking its size costs, the choice needs no size.
    """
    lookup = lookup_seconds(users, batch_round_trip)
    if lookup <= paging_seconds(users, round_trip) + round_trip:
        return "lookup"
    if directory is None:
        return "count"
    return "page" if paging_seconds(directory, round_trip) < lookup else "lookup"


def read_users(
    client: Any, wanted: Iterable[str], *, in_flight: int | None = None
) -> dict[str, UserState]:
    """Read the named users (UPNs or object ids); returns ``{casefolded name: state}``.

    Users are looked up by ``$filter`` (15 to a request, 20 requests to a ``$batch``,
    several batches in flight), or, when the sheet names so much of the directory that
    paging it (999 a page, one page after the other) is expected to be quicker, the whole
    directory is paged (:func:`choose_reading`; round trips are estimated from the
    client's requests so far). ``in_flight``: lookup batches at once (None: the client's most;
    1 for a read nobody waits for, 20 lookups to a batch).
    """
    names = {str(w).strip().casefold() for w in wanted if str(w).strip()}
    found: dict[str, UserState] = {}
    if not names:
        return found
    stats = getattr(client, "stats", None)
    single, batch = stats.round_trips() if stats is not None else (0.25, 0.5)
    choice = choose_reading(len(names), round_trip=single, batch_round_trip=batch)
    if choice == "count":
        size = _directory_size(client)
        choice = (
            "lookup"
            if size is None
            else choose_reading(
                len(names), round_trip=single, batch_round_trip=batch, directory=size
            )
        )
    if choice == "page":
        for user in client.get_all("/users", params={"$select": USER_SELECT, "$top": PAGE_SIZE}):
            for key in (
                str(user.get("userPrincipalName") or "").casefold(),
                str(user["id"]).casefold(),
            ):
                if key in names:
                    found[key] = user_state(user)
        return found
    spread = {} if in_flight is None else {"in_flight": in_flight}
    for asked, user in client.resolve_users(
        sorted(names), select=USER_SELECT.split(","), **spread
    ).items():
        found[asked.casefold()] = user_state(user)
    return found


def _directory_size(client: Any) -> int | None:
    """The directory's user count (an advanced query, one request, asked once per client);
    None when unknown."""
    from batch.errors import GraphError

    facts = getattr(client, "facts", {})
    if "directory_size" in facts:
        return facts["directory_size"]
    try:
        page = client.get(
            "/users",
            params={"$select": "id", "$top": 1, "$count": "true"},
            headers={"ConsistencyLevel": "eventual"},
        )
        size: int | None = int(page["@odata.count"])
    except (GraphError, KeyError, TypeError, ValueError):
        size = None
    facts["directory_size"] = size
    return size


def read_groups(client: Any, names: Iterable[str]) -> tuple[dict[str, GroupInfo], dict[str, str]]:
    """Find groups by display name or id, with members; several groups read at once.

    Returns ``({casefolded name: group}, {casefolded name: problem})``; a problem is a
    name no group has, or one that several groups share, and it fails the rows that name
    the group, not the run. So are, by Graph's query limits (graph-reference.md section 11):

    - a name longer than :data:`batch.graph.client.MAX_EQ_LENGTH` (120) characters: ``eq`` on a
      string takes no longer value (group names may have 256), so it is not sent at all;
    - any lookup Graph refuses with 400 (a query it will not run, a malformed id).

    Each group costs two or three reads of 1 or 2 resource units: with
    :data:`batch.graph.reads.MAX_IN_FLIGHT` groups at once, far below Graph's read budget.
    """
    from concurrent.futures import ThreadPoolExecutor

    from batch.graph.reads import MAX_IN_FLIGHT

    groups: dict[str, GroupInfo] = {}
    problems: dict[str, str] = {}
    ordered = sorted({n.strip() for n in names if n.strip()}, key=str.casefold)
    if not ordered:
        return groups, problems
    with ThreadPoolExecutor(
        max_workers=min(MAX_IN_FLIGHT, len(ordered)), thread_name_prefix="groups"
    ) as pool:
        read = pool.map(lambda n: _read_group(client, n), ordered)
        for name, found in zip(ordered, read, strict=True):
            if isinstance(found, GroupInfo):
                groups[name.casefold()] = found
            else:
                problems[name.casefold()] = found
    return groups, problems


def _read_group(client: Any, name: str) -> GroupInfo | str:
    """The group named ``name`` (display name or id) with its members, or the problem."""
    from batch.errors import GraphStatusError
    from batch.graph.client import MAX_EQ_LENGTH
    from batch.graph.queries import is_guid, odata_string

    if not is_guid(name) and len(name) > MAX_EQ_LENGTH:
        return (
            f"group name is longer than the {MAX_EQ_LENGTH} characters Graph can search "
            f"for; use the group's id ('{name[:40]}...' has {len(name)})"
        )
    try:
        if is_guid(name):
            try:
                matches = [client.get(f"/groups/{name}", params={"$select": GROUP_SELECT})]
            except GraphStatusError as exc:
                if exc.status != 404:
                    raise
                matches = []
        else:
            matches = list(
                client.get_all(
                    "/groups",
                    params={
                        "$filter": f"displayName eq {odata_string(name)}",
                        "$select": GROUP_SELECT,
                    },
                )
            )
    except GraphStatusError as exc:
        if exc.status != 400:
            raise
        return (
            f"Graph refused the lookup of group '{name[:60]}' ({exc.code or 'HTTP 400'}: "
            f"{exc.message}); use the group's id"
        )
    if not matches:
        return f"no group named '{name}'" if not is_guid(name) else f"no group with id {name}"
    if len(matches) > 1:
        return f"{len(matches)} groups are named '{name}': use the group's id"
    group = matches[0]
    members = frozenset(
        str(m["id"])
        for m in client.get_all(
            f"/groups/{group['id']}/members", params={"$select": "id", "$top": 999}
        )
    )
    return GroupInfo(
        id=str(group["id"]),
        display_name=str(group.get("displayName") or name),
        sku_ids=frozenset(str(a["skuId"]).lower() for a in group.get("assignedLicenses") or []),
        dynamic="DynamicMembership" in (group.get("groupTypes") or []),
        members=members,
    )


def name_licensing_groups(
    client: Any, users: Mapping[str, UserState], group_names: dict[str, str]
) -> dict[str, str]:
    """Add to ``group_names`` the groups ``users`` inherit licenses from, read by id.

    Licensing groups are few (one per product or bundle), so each is read on its own; a
    group that cannot be read (gone, or no permission to read groups) is named by its id.
    """
    unnamed = {
        g for state in users.values() for held in state.licenses.values() for g in held.groups
    } - set(group_names)
    for group_id, group in _read_by_id(client, "/groups", sorted(unnamed), "id,displayName"):
        group_names[group_id] = str(group.get("displayName") or group_id)
    return group_names


def _read_by_id(
    client: Any, collection: str, ids: list[str], select: str
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(id, object)`` for each id, read in ``$batch`` when several; ``{}`` when the object
    is gone or may not be read (403, 404)."""
    from batch.errors import GraphStatusError
    from batch.graph.answers import status_error
    from batch.graph.reads import get_many

    if len(ids) <= 1:
        for one in ids:
            try:
                yield one, client.get(f"{collection}/{one}", params={"$select": select})
            except GraphStatusError as exc:
                if exc.status not in (403, 404):
                    raise
                yield one, {}
        return
    paths = {one: f"{collection}/{one}?$select={select}" for one in ids}
    answers = get_many(client, list(paths.values()))
    for one, path in paths.items():
        answer = answers[path]
        if answer.status < 400:
            yield one, answer.body if isinstance(answer.body, dict) else {}
        elif answer.status in (403, 404):
            yield one, {}
        else:
            raise status_error("GET", client.url(path), answer.status, answer.body, answer.headers)
