"""True-up, reading: what the tenant bought and assigned, read once into a :class:`Snapshot`.

:func:`read_tenant` (read-only, through :class:`batch.graph.client.GraphClient`):

- ``GET /subscribedSkus``: the seat figures come from :func:`batch.run.tenant.seats_from_skus`,
  the very function ``m365batch skus`` uses, so both always show the same numbers;
- ``GET /groups?$select=id,displayName,assignedLicenses``: the licensed groups (all groups
  are paged, 999 a page, and filtered here: a ``$filter`` on ``assignedLicenses`` would be an
  advanced query and a tenant has few groups);
- ``GET /groups/{id}/membersWithLicenseErrors`` per licensed group: members whose inherited
  license failed, including those who hold no license at all because of it;
- ``GET /users?$select=...,signInActivity&$top=500``: every user, in the one form that
  reads sign-in activity reliably: a plain ``$select`` with ``$top`` at most 500, and *no*
  ``$count=true`` / ``ConsistencyLevel: eventual``. With those advanced-query parameters
  Graph has been seen to answer ``signInActivity`` empty for users past the 120th of a page
  (graph-reference.md section 11; msgraph-sdk-powershell issue 1898). The licensed-users
  filter (``assignedLicenses/$count ne 0``) *is* an advanced query, so choice: it is
  dropped for this read and users are filtered here (``assignedLicenses`` not empty). One
  pass over the directory at 500 a page costs fewer requests than the alternative, licensed
  users filtered by Graph plus a second plain pass for the sign-in activity of everyone.
- When sign-in activity is refused (403: no ``AuditLog.Read.All``, or no Entra ID P1), the
  read is repeated without it, now as the advanced query for licensed users only (999 a
  page, ``ConsistencyLevel: eventual`` and ``$count=true`` sent again on every page; should
  Graph refuse that combination with 400, every user is paged and filtered locally); the
  inactivity checks are skipped, and the workbook and the console say so.

Activity: a user's last activity is the later of ``lastSignInDateTime`` and
``lastNonInteractiveSignInDateTime`` (Microsoft's inactive-account guidance looks at both).
What ``signInActivity`` says, user by user:

- an object with a date: the user signed in then;
- an object with no date, or the property not returned at all: never signed in (the docs:
  "This property isn't returned for a user who never signed in or last signed in before
  April 2020"; the reliable read above does not drop it otherwise);
- ``"signInActivity": null``: the data is missing (issue 1898): *unknown*. Choice: an
  unknown user is never called inactive or never-signed-in. They do not appear in the
  Reclaim sheet for their sign-in (they still do when their account is disabled or their
  licenses overlap, which does not depend on sign-in); the Users sheet says ``unknown`` and
  the Summary notes how many there are, to be checked in the sign-in logs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from queue import Empty, Queue
from typing import Any, TypeVar

from batch.errors import GraphStatusError, PermissionDenied
from batch.run.tenant import HeldLicense, SkuSeats, seats_from_skus, user_state

__all__ = ["LicenseError", "LicensedUser", "Snapshot", "read_tenant", "users_query"]

Progress = Callable[[str], None]
T = TypeVar("T")

USER_FIELDS = (
    "id,userPrincipalName,displayName,accountEnabled,createdDateTime,department,"
    "usageLocation,assignedLicenses,licenseAssignmentStates"
)
PAGE_WITH_SIGN_IN = 500  #: Graph's maximum page when signInActivity is selected
PAGE_PLAIN = 999
LICENSED_FILTER = "assignedLicenses/$count ne 0"
NO_ERROR = (None, "", "None")
ACTIVE_STATES = ("Active", "ActiveWithError")


@dataclass(frozen=True)
class LicensedUser:
    """A user holding at least one license, as far as the true-up needs."""

    id: str
    upn: str
    name: str
    department: str
    country: str
    enabled: bool
    created: dt.datetime | None
    last_sign_in: dt.datetime | None
    licenses: tuple[HeldLicense, ...]
    #: Graph returned ``signInActivity: null``: whether the user signed in is unknown
    sign_in_unknown: bool = False


@dataclass(frozen=True)
class LicenseError:
    """One failed inherited (or direct) license of one user."""

    user_id: str
    upn: str
    name: str
    sku_id: str
    group_id: str | None
    error: str
    state: str
    updated: dt.datetime | None


@dataclass
class Snapshot:
    """Everything read from the tenant for one true-up."""

    tenant: str  #: the tenant's name, for the workbook
    tenant_key: str  #: a short name for file names (default domain's first label)
    read_at: dt.datetime
    skus: list[dict[str, Any]]
    seats: list[SkuSeats]
    users: list[LicensedUser]
    groups: dict[str, tuple[str, frozenset[str]]]  #: id -> (display name, skuIds)
    errors: list[LicenseError]
    sign_in_available: bool
    notes: list[str] = field(default_factory=list)
    requests: int = 0
    resource_units: float = 0.0
    throttled: int = 0


def _parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _last_activity(user: Mapping[str, Any]) -> dt.datetime | None:
    activity = user.get("signInActivity") or {}
    times = [
        _parse_time(activity.get(k))
        for k in ("lastSignInDateTime", "lastNonInteractiveSignInDateTime")
    ]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _sign_in_unknown(user: Mapping[str, Any]) -> bool:
    """Whether the user's sign-in activity is missing: returned as null (or as no object).

    Not returned at all is what the docs say of a user who never signed in (see the module
    docstring); an object without dates says the same.
    """
    return "signInActivity" in user and not isinstance(user["signInActivity"], dict)


def _licensed_user(user: Mapping[str, Any]) -> LicensedUser:
    # A license in state Error (e.g. a group's CountViolation) is not held: no seat, no
    # service. Only active states count here; the errors go to the Errors sheet.
    active = [
        s for s in user.get("licenseAssignmentStates") or [] if s.get("state") in ACTIVE_STATES
    ]
    held_ids = {str(a["skuId"]).lower() for a in user.get("assignedLicenses") or []}
    state = user_state({**user, "licenseAssignmentStates": active})
    enabled = user.get("accountEnabled")
    return LicensedUser(
        id=state.id,
        upn=state.upn,
        name=state.display_name,
        department=str(user.get("department") or ""),
        country=str(user.get("usageLocation") or ""),
        enabled=True if enabled is None else bool(enabled),
        created=_parse_time(user.get("createdDateTime")),
        last_sign_in=_last_activity(user),
        licenses=tuple(state.licenses[s] for s in sorted(state.licenses) if s in held_ids),
        sign_in_unknown=_sign_in_unknown(user),
    )


def _errors_of(user: Mapping[str, Any]) -> Iterator[LicenseError]:
    for item in user.get("licenseAssignmentStates") or []:
        if item.get("error") in NO_ERROR:
            continue
        yield LicenseError(
            user_id=str(user["id"]),
            upn=str(user.get("userPrincipalName") or ""),
            name=str(user.get("displayName") or ""),
            sku_id=str(item.get("skuId") or "").lower(),
            group_id=str(item["assignedByGroup"]) if item.get("assignedByGroup") else None,
            error=str(item["error"]),
            state=str(item.get("state") or ""),
            updated=_parse_time(item.get("lastUpdatedDateTime")),
        )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]


def _read_organization(client: Any, fallback: str) -> tuple[str, str]:
    try:
        org: Mapping[str, Any] = next(
            iter(
                client.get_all(
                    "/organization", params={"$select": "id,displayName,verifiedDomains"}
                )
            ),
            {},
        )
    except GraphStatusError:
        return fallback, _slug(fallback) or "tenant"
    name = str(org.get("displayName") or fallback)
    domains = org.get("verifiedDomains") or []
    default = next((d.get("name") for d in domains if d.get("isDefault")), None)
    key = _slug(str(default).split(".")[0]) if default else _slug(name)
    return name, key or "tenant"


def users_query(*, sign_in: bool, filtered: bool) -> tuple[dict[str, Any], dict[str, str] | None]:
    """The ``GET /users`` parameters and headers of the true-up's user read.

    With ``sign_in``: ``signInActivity`` selected, 500 a page, no filter and no advanced-query
    parameters (the reliable form, see the module docstring). Without it: licensed users
    only through the advanced query when ``filtered``, 999 a page.
    """
    if sign_in:
        return {"$select": USER_FIELDS + ",signInActivity", "$top": PAGE_WITH_SIGN_IN}, None
    params: dict[str, Any] = {"$select": USER_FIELDS, "$top": PAGE_PLAIN}
    if not filtered:
        return params, None
    params.update({"$filter": LICENSED_FILTER, "$count": "true"})
    return params, {"ConsistencyLevel": "eventual"}


def _read_users(
    client: Any, *, sign_in: bool, filtered: bool, progress: Progress | None
) -> Iterator[dict[str, Any]]:
    params, headers = users_query(sign_in=sign_in, filtered=filtered)
    users = read_ahead(client.get_all("/users", params=params, headers=headers))
    for seen, user in enumerate(users, 1):
        if progress and seen % 10_000 == 0:
            progress(f"read {seen:,} users")
        yield user


#: users read ahead of the ones being processed (two pages of 500)
READ_AHEAD = 1000


@dataclass(frozen=True)
class _End:
    """The reader's last word: done, or the error that stopped it."""

    error: BaseException | None = None


def read_ahead(items: Iterator[T], ahead: int = READ_AHEAD) -> Iterator[T]:
    """``items``, read in a thread up to ``ahead`` items ahead of the caller.

    Pages come one after the other (each names the next), so the tenant would wait while
    a page is processed and the caller while the next is read; read ahead, the two
    overlap. An error reaches the caller where it happened, after the items before it;
    a caller that stops early stops the reading at its next item.
    """
    queue: Queue[T | _End] = Queue(maxsize=ahead)
    stop = threading.Event()

    def read() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                queue.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed over to the caller as is
            queue.put(_End(exc))
        else:
            queue.put(_End())

    threading.Thread(target=read, name="read-ahead", daemon=True).start()
    try:
        while not isinstance(item := queue.get(), _End):
            yield item
        if item.error is not None:
            raise item.error
    finally:
        stop.set()
        with contextlib.suppress(Empty):  # a reader waiting on a full queue moves on
            while True:
                queue.get_nowait()


def read_tenant(
    client: Any,
    *,
    tenant_label: str = "",
    progress: Progress | None = None,
    now: dt.datetime | None = None,
) -> Snapshot:
    """Read SKUs, licensed groups, licensed users and license errors from the tenant."""
    notes: list[str] = []
    read_at = now or dt.datetime.now(dt.UTC)
    skus = list(client.get_all("/subscribedSkus"))
    seats = seats_from_skus(skus)
    tenant_name, tenant_key = _read_organization(client, tenant_label or "tenant")
    groups = _read_licensed_groups(client, notes)
    errors = _read_group_errors(client, groups, notes)
    if progress:
        progress(f"{len(seats)} SKUs, {len(groups)} licensed groups; reading licensed users")
    users, sign_in = _read_licensed_users(client, errors, notes, progress)
    stats = client.stats
    return Snapshot(
        tenant=tenant_name,
        tenant_key=tenant_key,
        read_at=read_at,
        skus=skus,
        seats=seats,
        users=sorted(users, key=lambda u: u.upn.casefold()),
        groups=groups,
        errors=sorted(errors.values(), key=lambda e: (e.upn.casefold(), e.sku_id)),
        sign_in_available=sign_in,
        notes=notes,
        requests=stats.requests,
        resource_units=stats.resource_units,
        throttled=stats.throttled,
    )


#: a license error's key: (user id, skuId, group id or None)
_ErrorKey = tuple[str, str, str | None]


def _read_licensed_groups(client: Any, notes: list[str]) -> dict[str, tuple[str, frozenset[str]]]:
    """Groups that carry licenses: id -> (display name, skuIds); a note when not allowed."""
    groups: dict[str, tuple[str, frozenset[str]]] = {}
    try:
        for group in client.get_all(
            "/groups", params={"$select": "id,displayName,assignedLicenses", "$top": PAGE_PLAIN}
        ):
            licenses = frozenset(
                str(a["skuId"]).lower() for a in group.get("assignedLicenses") or []
            )
            if licenses:
                groups[str(group["id"])] = (str(group.get("displayName") or group["id"]), licenses)
    except PermissionDenied:
        notes.append(
            "Groups could not be read (the app lacks Group.Read.All or "
            "Directory.Read.All): inherited licenses show the group's id, not its name."
        )
    return groups


def _read_group_errors(
    client: Any, groups: Mapping[str, tuple[str, frozenset[str]]], notes: list[str]
) -> dict[_ErrorKey, LicenseError]:
    """The license errors of each licensed group's members (stops at the first refusal)."""
    errors: dict[_ErrorKey, LicenseError] = {}
    for group_id in groups:
        try:
            for member in client.get_all(
                f"/groups/{group_id}/membersWithLicenseErrors",
                params={
                    "$select": "id,userPrincipalName,displayName,licenseAssignmentStates",
                    "$top": PAGE_PLAIN,
                },
            ):
                for error in _errors_of(member):
                    if error.group_id == group_id:
                        errors[(error.user_id, error.sku_id, error.group_id)] = error
        except GraphStatusError as exc:
            notes.append(
                f"Members with license errors of group {groups[group_id][0]} could "
                f"not be read ({exc.status} {exc.code or ''}); errors come from "
                "licensed users only."
            )
            break
    return errors


def _read_licensed_users(
    client: Any,
    errors: dict[_ErrorKey, LicenseError],
    notes: list[str],
    progress: Progress | None,
) -> tuple[list[LicensedUser], bool]:
    """(licensed users, whether their sign-in activity was read); adds their license errors.

    Tries the reliable sign-in read first, then (403) the advanced query for licensed users,
    then (400) every user filtered here; see the module docstring.
    """
    sign_in, filtered = True, True
    while True:
        try:
            users: list[LicensedUser] = []
            for raw in _read_users(client, sign_in=sign_in, filtered=filtered, progress=progress):
                for error in _errors_of(raw):
                    errors.setdefault((error.user_id, error.sku_id, error.group_id), error)
                if raw.get("assignedLicenses"):
                    users.append(_licensed_user(raw))
            return users, sign_in
        except PermissionDenied:
            if not sign_in:
                raise
            sign_in = False
            notes.append(
                "Sign-in activity could not be read (403: it needs the AuditLog.Read.All "
                "permission and Microsoft Entra ID P1 or P2). The checks for inactive and "
                "never-signed-in users were skipped; everything else is complete."
            )
        except GraphStatusError as exc:
            if sign_in or not filtered or exc.status != 400:
                raise
            # Graph refused the advanced query: page everyone and keep the licensed.
            filtered = False
