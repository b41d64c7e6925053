"""True-up: read what the tenant bought and assigned, and work out waste, cost and change.

Stage 1, :func:`read_tenant` (read-only, through :class:`batch.graph.client.GraphClient`):

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

Stage 2, :func:`compute_trueup` (pure): per-SKU seats and cost, per-user rows, seats to
reclaim (disabled, inactive, never signed in, overlapping SKUs, direct beside group), group
licensing errors explained, cost by department and country, and changes since an earlier
true-up workbook (:func:`read_previous`).

Money: prices are per seat per month (:mod:`batch.jobs.trueup.prices`). A SKU's monthly cost is its
enabled (billed) seats times its price; the cost of free seats is the unused part of it. A
user's cost is the sum of the prices of the SKUs they hold, so department and country
totals add up to the cost of assigned seats. Amounts in different currencies are never
added: every total is per currency.

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

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch.errors import GraphStatusError, InputError, PermissionDenied
from batch.intake.catalog import Catalog
from batch.jobs.trueup.prices import Price, PriceList, read_rows
from batch.run.tenant import HeldLicense, SkuSeats, seats_from_skus, user_state

__all__ = [
    "ERROR_EXPLANATIONS",
    "LicenseError",
    "LicensedUser",
    "Previous",
    "ReclaimItem",
    "Snapshot",
    "TrueUp",
    "compute_trueup",
    "read_previous",
    "read_tenant",
    "trueup_output_path",
]

Progress = Callable[[str], None]

USER_FIELDS = (
    "id,userPrincipalName,displayName,accountEnabled,createdDateTime,department,"
    "usageLocation,assignedLicenses,licenseAssignmentStates"
)
PAGE_WITH_SIGN_IN = 500  #: Graph's maximum page when signInActivity is selected
PAGE_PLAIN = 999
LICENSED_FILTER = "assignedLicenses/$count ne 0"
NO_ERROR = (None, "", "None")
ACTIVE_STATES = ("Active", "ActiveWithError")

#: plain-language meaning of licenseAssignmentState.error values (graph-reference.md §4)
ERROR_EXPLANATIONS = {
    "CountViolation": "Not enough seats: the subscription has no free seat left for this user. "
    "Buy seats or free some, then reprocess the user.",
    "MutuallyExclusiveViolation": "Two licenses clash: a service plan in this license cannot be "
    "combined with one the user already has (e.g. Exchange Online "
    "Plan 1 beside Plan 2). Remove one of them.",
    "DependencyViolation": "A service plan in this license needs another plan the user does not "
    "have. Assign the license that contains it first.",
    "ProhibitedInUsageLocationViolation": "The license cannot be used in the user's usage "
    "location (country). Change the location or the license.",
    "UniquenessViolation": "The user's proxy (e-mail) address after licensing is already used by "
    "another object in the tenant. Fix the duplicate address.",
    "Other": "Another problem; the group's licensing blade in the admin center shows details. "
    "Reprocess the user after fixing it.",
}
ERROR_EXPLANATIONS["Others"] = ERROR_EXPLANATIONS["Other"]

# Plans that carry no service of their own or sit in nearly every SKU.
_PLUMBING_PLANS = frozenset({"EXCHANGE_S_FOUNDATION"})
# Lower editions that a higher plan of another name contains.
_PLAN_SUPERSEDED_BY = {
    "EXCHANGE_S_STANDARD": ("EXCHANGE_S_ENTERPRISE",),
    "EXCHANGE_S_DESKLESS": ("EXCHANGE_S_STANDARD", "EXCHANGE_S_ENTERPRISE"),
    "SHAREPOINTSTANDARD": ("SHAREPOINTENTERPRISE",),
    "SHAREPOINTDESKLESS": ("SHAREPOINTSTANDARD", "SHAREPOINTENTERPRISE"),
    "ADALLOM_S_DISCOVERY": ("ADALLOM_S_STANDALONE",),
    "MDE_LITE": ("WINDEFATP",),
    "RMS_S_BASIC": ("RMS_S_ENTERPRISE",),
    "AAD_PREMIUM": ("AAD_PREMIUM_P2",),
}
_TIER = re.compile(r"^(.*?)_(?:P|E|PLAN|PLAN_)?(\d)$")
#: share of a SKU's service plans another held SKU must include for the two to overlap
OVERLAP_SHARE = 0.9


# ------------------------------------------------------------------------------ reading


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
        org = next(
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
    for seen, user in enumerate(client.get_all("/users", params=params, headers=headers), 1):
        if progress and seen % 10_000 == 0:
            progress(f"read {seen:,} users")
        yield user


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

    groups: dict[str, tuple[str, frozenset[str]]] = {}
    errors: dict[tuple[str, str, str | None], LicenseError] = {}
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

    if progress:
        progress(f"{len(seats)} SKUs, {len(groups)} licensed groups; reading licensed users")
    sign_in, filtered = True, True
    while True:
        try:
            users: list[LicensedUser] = []
            for raw in _read_users(client, sign_in=sign_in, filtered=filtered, progress=progress):
                for error in _errors_of(raw):
                    errors.setdefault((error.user_id, error.sku_id, error.group_id), error)
                if raw.get("assignedLicenses"):
                    users.append(_licensed_user(raw))
            break
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


# ------------------------------------------------------------------------------ previous


@dataclass
class Previous:
    """What an earlier true-up workbook said: licensed users and seats per SKU."""

    path: Path
    users: dict[str, tuple[str, str, str]]  #: casefolded UPN -> (UPN, name, licenses)
    seats: dict[str, tuple[str, int, int]]  #: part number -> (product, purchased, assigned)
    date: str = ""


def _int(text: str) -> int:
    cleaned = re.sub(r"[^\d-]", "", text)
    return int(cleaned) if cleaned not in ("", "-") else 0


def read_previous(path: Path | str) -> Previous:
    """Read an earlier true-up workbook's Users sheet and Summary seat table."""
    path = Path(path)
    hint = "Give --previous a workbook written by m365batch true-up."
    try:
        _, user_rows = read_rows(path, sheet="Users")
        _, summary_rows = read_rows(path, sheet="Summary")
    except InputError as exc:
        raise InputError(
            f"is not a true-up workbook ({exc.message})", path=path, hint=hint
        ) from exc
    if not user_rows or "UPN" not in user_rows[0]:
        raise InputError(
            "is not a true-up workbook (its Users sheet has no UPN column).", path=path, hint=hint
        )
    head = user_rows[0]
    upn_col, name_col, lic_col = head.index("UPN"), head.index("Name"), head.index("Licenses")
    users = {}
    for row in user_rows[1:]:
        if len(row) > upn_col and row[upn_col].strip():
            upn = row[upn_col].strip()
            users[upn.casefold()] = (upn, row[name_col], row[lic_col])
    seats: dict[str, tuple[str, int, int]] = {}
    date = ""
    header: list[str] | None = None
    for row in summary_rows:
        if row and row[0] == "Date" and len(row) > 1:
            date = row[1]
        if header is None:
            if "Part number" in row and "Purchased" in row:
                header = row
            continue
        if not row or not row[header.index("Part number")].strip():
            break
        part = row[header.index("Part number")].strip()
        seats[part] = (
            row[header.index("Product")],
            _int(row[header.index("Purchased")]),
            _int(row[header.index("Assigned")]),
        )
    if header is None:
        raise InputError(
            "is not a true-up workbook (its Summary sheet has no seat table).", path=path, hint=hint
        )
    return Previous(path=path, users=users, seats=seats, date=date)


# ------------------------------------------------------------------------------ computing


@dataclass(frozen=True)
class ReclaimItem:
    """One license that could be taken back (or tidied), and why."""

    category: str
    user: LicensedUser
    sku_id: str
    source: str  #: "Direct", "Group: name", or both
    reason: str
    action: str
    price: Price | None
    saves_seat: bool  #: False for a direct assignment beside the same group license


@dataclass(frozen=True)
class SkuFigures:
    """One SKU's row of the Summary."""

    seats: SkuSeats
    product: str
    price: Price | None

    @property
    def utilization(self) -> float | None:
        return self.seats.consumed / self.seats.enabled if self.seats.enabled else None

    @property
    def monthly_cost(self) -> float | None:
        return None if self.price is None else self.price.amount * self.seats.enabled

    @property
    def free_cost(self) -> float | None:
        return None if self.price is None else self.price.amount * self.seats.free


@dataclass
class CostGroup:
    """Users and seats of a department or country, with cost per currency."""

    key: str
    label: str
    users: int = 0
    seats: int = 0
    unpriced_seats: int = 0
    cost: dict[str, float] = field(default_factory=dict)


@dataclass
class TrueUp:
    """The whole monthly reconciliation, ready to be written."""

    snapshot: Snapshot
    catalog: Catalog
    prices: PriceList
    inactive_days: int
    skus: list[SkuFigures]
    reclaim: list[ReclaimItem]
    departments: list[CostGroup]
    countries: list[CostGroup]
    changes: list[tuple[str, str, str, str, Any, Any, Any]] | None
    previous: Previous | None
    notes: list[str]

    @property
    def currencies(self) -> list[str]:
        return self.prices.currencies

    def product(self, sku_id: str) -> str:
        """The product name of a SKU for reports."""
        return self.catalog.friendly_name(sku_id)

    def group_name(self, group_id: str) -> str:
        """A group's display name (its id when groups could not be read)."""
        entry = self.snapshot.groups.get(group_id)
        return entry[0] if entry else group_id

    def user_cost(self, user: LicensedUser) -> tuple[dict[str, float], list[str]]:
        """({currency: monthly cost}, product names without a price) of one user."""
        cost: dict[str, float] = {}
        unpriced = []
        for held in user.licenses:
            price = self.prices.get(held.sku_id)
            if price is None:
                unpriced.append(self.product(held.sku_id))
            else:
                cost[price.currency] = cost.get(price.currency, 0.0) + price.amount
        return cost, unpriced

    @property
    def free_seats(self) -> int:
        return sum(f.seats.free for f in self.skus)

    def reclaimable(self) -> tuple[int, dict[str, float]]:
        """Unique (user, SKU) seats to reclaim and their monthly saving per currency."""
        seen: set[tuple[str, str]] = set()
        saving: dict[str, float] = {}
        for item in self.reclaim:
            key = (item.user.id, item.sku_id)
            if not item.saves_seat or key in seen:
                continue
            seen.add(key)
            if item.price is not None:
                currency = item.price.currency
                saving[currency] = saving.get(currency, 0.0) + item.price.amount
        return len(seen), saving

    def totals(self) -> dict[str, tuple[float, float]]:
        """Per currency: (monthly cost of enabled seats, cost of free seats)."""
        result: dict[str, tuple[float, float]] = {}
        for figures in self.skus:
            if figures.price is None:
                continue
            cost, free = result.get(figures.price.currency, (0.0, 0.0))
            result[figures.price.currency] = (
                cost + (figures.monthly_cost or 0.0),
                free + (figures.free_cost or 0.0),
            )
        return result


def _plan_family(name: str) -> tuple[str, int]:
    match = _TIER.match(name)
    return (match.group(1), int(match.group(2))) if match else (name, 0)


def plan_coverage(
    inner: Iterable[tuple[str, str]], outer: Iterable[tuple[str, str]]
) -> tuple[float, list[str]]:
    """Share of ``inner``'s (id, name) service plans that ``outer`` includes, and the rest.

    A plan is included when ``outer`` has the same plan, the same plan at an equal or higher
    tier (``FORMS_PLAN_E3`` in ``FORMS_PLAN_E5``, ``FLOW_O365_P2`` in ``FLOW_O365_P3``), or a
    known higher edition (Exchange Plan 1 in Plan 2). Plumbing plans are not counted.
    """
    outer = list(outer)
    ids = {pid for pid, _ in outer}
    names = {name for _, name in outer}
    tiers: dict[str, int] = {}
    for _, name in outer:
        family, tier = _plan_family(name)
        tiers[family] = max(tiers.get(family, -1), tier)
    plans = [(pid, name) for pid, name in inner if name not in _PLUMBING_PLANS]
    if not plans:
        return 0.0, []
    missing = []
    for pid, name in plans:
        family, tier = _plan_family(name)
        if pid in ids or tiers.get(family, -1) >= tier and family in tiers:
            continue
        if any(higher in names for higher in _PLAN_SUPERSEDED_BY.get(name, ())):
            continue
        missing.append(name)
    return 1 - len(missing) / len(plans), missing


def overlap_table(catalog: Catalog, sku_ids: Iterable[str]) -> dict[tuple[str, str], float]:
    """{(redundant SKU, SKU that contains it): share} over the given SKUs."""
    plans = {
        s: [(p.id, p.name) for p in (catalog.get(s).plans if catalog.get(s) else ())]
        for s in sku_ids
    }
    result = {}
    for inner in plans:
        for outer in plans:
            if inner == outer or not plans[inner] or not plans[outer]:
                continue
            share, _ = plan_coverage(plans[inner], plans[outer])
            if share < OVERLAP_SHARE:
                continue
            back, _ = plan_coverage(plans[outer], plans[inner])
            # Two near-identical SKUs: only the one less covered by the other is redundant.
            if back > share or (back == share and inner < outer):
                continue
            result[(inner, outer)] = share
    return result


def _source(held: HeldLicense, trueup_groups: Callable[[str], str]) -> str:
    parts = ["Direct"] if held.direct else []
    parts += [f"Group: {trueup_groups(g)}" for g in held.groups]
    return "; ".join(parts)


def _removal_action(held: HeldLicense, group_name: Callable[[str], str]) -> str:
    steps = []
    if held.direct:
        steps.append("remove the direct assignment")
    for group in held.groups:
        steps.append(f"remove the user from group '{group_name(group)}'")
    text = "; ".join(steps) or "remove the license"
    return text[0].upper() + text[1:]


def compute_trueup(
    snapshot: Snapshot,
    catalog: Catalog,
    prices: PriceList,
    *,
    inactive_days: int = 90,
    previous: Previous | None = None,
) -> TrueUp:
    """Work out seats, cost, reclaimable licenses, errors and changes from a snapshot."""
    notes = list(snapshot.notes)
    now = snapshot.read_at
    figures = [
        SkuFigures(s, catalog.friendly_name(s.sku_id), prices.get(s.sku_id)) for s in snapshot.seats
    ]
    if not prices.prices:
        notes.append("No prices were given (--prices): cost columns say 'no price'.")
    else:
        missing = [f.seats.part_number for f in figures if f.price is None]
        if missing:
            notes.append(f"No price for {len(missing)} SKU(s): {', '.join(missing)}.")
    notes.extend(prices.warnings)
    result = TrueUp(
        snapshot=snapshot,
        catalog=catalog,
        prices=prices,
        inactive_days=inactive_days,
        skus=figures,
        reclaim=[],
        departments=[],
        countries=[],
        changes=None,
        previous=previous,
        notes=notes,
    )
    held_anywhere = {h.sku_id for u in snapshot.users for h in u.licenses}
    overlaps = overlap_table(catalog, held_anywhere | {s.sku_id for s in snapshot.seats})
    threshold = dt.timedelta(days=inactive_days)
    reclaim: list[ReclaimItem] = []
    group_name = result.group_name
    departments: dict[str, CostGroup] = {}
    countries: dict[str, CostGroup] = {}

    unknown = 0
    for user in snapshot.users:
        # At most one account-level finding per user: disabled beats inactive beats never.
        # A user whose sign-in activity is unknown is neither inactive nor never signed in.
        account: tuple[str, str] | None = None
        if not user.enabled:
            account = ("Disabled account", "The account is disabled but still holds this license.")
        elif snapshot.sign_in_available and user.sign_in_unknown:
            unknown += 1
        elif snapshot.sign_in_available and user.last_sign_in is not None:
            idle = now - user.last_sign_in
            if idle > threshold:
                account = (
                    "Inactive",
                    f"No sign-in for {idle.days} days "
                    f"(last {user.last_sign_in:%Y-%m-%d}; threshold {inactive_days}).",
                )
        elif (
            snapshot.sign_in_available
            and user.created is not None
            and now - user.created > threshold
        ):
            account = (
                "Never signed in",
                f"Never signed in; created {(now - user.created).days} "
                f"days ago ({user.created:%Y-%m-%d}): assigned but never activated.",
            )
        held_ids = {h.sku_id for h in user.licenses}
        for held in user.licenses:
            price = prices.get(held.sku_id)
            source = _source(held, group_name)
            if account:
                reclaim.append(
                    ReclaimItem(
                        account[0],
                        user,
                        held.sku_id,
                        source,
                        account[1],
                        _removal_action(held, group_name),
                        price,
                        True,
                    )
                )
            containers = [
                outer for (inner, outer) in overlaps if inner == held.sku_id and outer in held_ids
            ]
            if containers:
                outer_names = " and ".join(catalog.friendly_name(o) for o in sorted(containers))
                share = max(overlaps[(held.sku_id, o)] for o in containers)
                reclaim.append(
                    ReclaimItem(
                        "Overlapping license",
                        user,
                        held.sku_id,
                        source,
                        f"{catalog.friendly_name(held.sku_id)} is contained in {outer_names}, "
                        f"which the user also holds ({share:.0%} of its service plans are "
                        "included).",
                        _removal_action(held, group_name),
                        price,
                        True,
                    )
                )
            if held.direct and held.groups:
                reclaim.append(
                    ReclaimItem(
                        "Direct and group",
                        user,
                        held.sku_id,
                        source,
                        "Assigned directly and through a group: one seat is used, but the direct "
                        "assignment is redundant.",
                        "Remove the direct assignment (the group keeps the license)",
                        price,
                        False,
                    )
                )
        cost, unpriced = result.user_cost(user)
        for bucket, key, label in (
            (departments, user.department.casefold(), user.department or "(no department)"),
            (countries, user.country.upper(), _country_label(user.country)),
        ):
            entry = bucket.setdefault(key, CostGroup(key, label))
            entry.users += 1
            entry.seats += len(user.licenses)
            entry.unpriced_seats += len(unpriced)
            for currency, amount in cost.items():
                entry.cost[currency] = entry.cost.get(currency, 0.0) + amount

    if unknown:
        result.notes.append(
            f"Sign-in activity is unknown for {unknown} enabled licensed user(s): Graph returned "
            "none for them. They are marked 'unknown' in Users and are not in Reclaim as "
            "inactive or never signed in; check their sign-in logs before reclaiming."
        )
    order = {
        "Disabled account": 0,
        "Inactive": 1,
        "Never signed in": 2,
        "Overlapping license": 3,
        "Direct and group": 4,
    }
    result.reclaim = sorted(
        reclaim, key=lambda r: (order[r.category], r.user.upn.casefold(), r.sku_id)
    )
    result.departments = sorted(departments.values(), key=lambda c: c.label.casefold())
    result.countries = sorted(countries.values(), key=lambda c: c.label.casefold())
    if previous is not None:
        result.changes = _changes(result, previous)
    return result


def _country_label(code: str) -> str:
    if not code:
        return "(no usage location)"
    try:
        import pycountry

        country = pycountry.countries.get(alpha_2=code.upper())
    except (ImportError, KeyError, LookupError):
        country = None
    return f"{code.upper()} - {country.name}" if country else code.upper()


def licenses_text(trueup: TrueUp, user: LicensedUser) -> str:
    """A user's licenses as product names, sorted, '; '-separated."""
    return "; ".join(sorted(trueup.product(h.sku_id) for h in user.licenses))


def _changes(trueup: TrueUp, previous: Previous) -> list[tuple[str, str, str, str, Any, Any, Any]]:
    """(Change, Item, Name, Measure, Before, After, Difference) rows, seats first."""
    rows: list[tuple[str, str, str, str, Any, Any, Any]] = []
    now_seats = {f.seats.part_number: f for f in trueup.skus}
    for part in sorted(set(now_seats) | set(previous.seats), key=str.casefold):
        before = previous.seats.get(part)
        after = now_seats.get(part)
        product = after.product if after else (before[0] if before else part)
        for measure, index, now_value in (
            ("Purchased", 1, after.seats.enabled if after else 0),
            ("Assigned", 2, after.seats.consumed if after else 0),
        ):
            then_value = before[index] if before else 0
            if then_value != now_value:
                kind = "Seats added" if now_value > then_value else "Seats removed"
                if before is None:
                    kind = "New SKU"
                elif after is None:
                    kind = "SKU gone"
                rows.append(
                    (kind, part, product, measure, then_value, now_value, now_value - then_value)
                )
    current = {u.upn.casefold(): u for u in trueup.snapshot.users}
    for key in sorted(set(current) | set(previous.users)):
        user = current.get(key)
        old = previous.users.get(key)
        now_text = licenses_text(trueup, user) if user else ""
        if user and not old:
            rows.append(("User added", user.upn, user.name, "Licenses", "", now_text, None))
        elif old and not user:
            rows.append(("User removed", old[0], old[1], "Licenses", old[2], "", None))
        elif user and old and old[2] != now_text:
            rows.append(
                ("Licenses changed", user.upn, user.name, "Licenses", old[2], now_text, None)
            )
    return rows


def trueup_output_path(
    tenant_key: str, *, directory: Path | None = None, now: dt.datetime | None = None
) -> Path:
    """``true-up-<tenant>-<timestamp>.xlsx`` in ``directory`` or the cwd; never an existing file."""
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    folder = directory or Path.cwd()
    candidate = folder / f"true-up-{tenant_key}-{stamp}.xlsx"
    counter = 2
    while candidate.exists():
        candidate = folder / f"true-up-{tenant_key}-{stamp}-{counter}.xlsx"
        counter += 1
    return candidate
