"""True-up, computing: waste, cost and change from a :class:`~batch.jobs.trueup.snapshot.Snapshot`.

The tenant is read by :mod:`batch.jobs.trueup.snapshot` (sign-in activity included, see
there), an earlier workbook by :mod:`batch.jobs.trueup.previous`.

:func:`compute_trueup` (pure): per-SKU seats and cost, per-user rows, seats to
reclaim (disabled, inactive, never signed in, overlapping SKUs, direct beside group), group
licensing errors explained, cost by department and country, and changes since an earlier
true-up workbook (:func:`batch.jobs.trueup.previous.read_previous`).

Money: prices are per seat per month (:mod:`batch.jobs.trueup.prices`). A SKU's monthly cost is its
enabled (billed) seats times its price; the cost of free seats is the unused part of it. A
user's cost is the sum of the prices of the SKUs they hold, so department and country
totals add up to the cost of assigned seats. Amounts in different currencies are never
added: every total is per currency.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch.intake.catalog import Catalog
from batch.jobs.trueup.previous import Previous
from batch.jobs.trueup.prices import Price, PriceList
from batch.jobs.trueup.snapshot import LicensedUser, Snapshot
from batch.run.tenant import HeldLicense, SkuSeats

__all__ = [
    "ERROR_EXPLANATIONS",
    "ReclaimItem",
    "TrueUp",
    "compute_trueup",
    "licenses_text",
    "overlap_table",
    "plan_coverage",
    "summary_lines",
    "trueup_output_path",
]

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
    #: product names already looked up (a report asks for them once a user and license)
    _products: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def currencies(self) -> list[str]:
        return self.prices.currencies

    def product(self, sku_id: str) -> str:
        """The product name of a SKU for reports."""
        name = self._products.get(sku_id)
        if name is None:
            name = self._products[sku_id] = self.catalog.friendly_name(sku_id)
        return name

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
    plans: dict[str, list[tuple[str, str]]] = {}
    for sku_id in sku_ids:
        sku = catalog.get(sku_id)
        plans[sku_id] = [(p.id, p.name) for p in sku.plans] if sku else []
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


#: the order of the Reclaim sheet
RECLAIM_ORDER = {
    "Disabled account": 0,
    "Inactive": 1,
    "Never signed in": 2,
    "Overlapping license": 3,
    "Direct and group": 4,
}


def compute_trueup(
    snapshot: Snapshot,
    catalog: Catalog,
    prices: PriceList,
    *,
    inactive_days: int = 90,
    previous: Previous | None = None,
) -> TrueUp:
    """Work out seats, cost, reclaimable licenses, errors and changes from a snapshot."""
    figures = [
        SkuFigures(s, catalog.friendly_name(s.sku_id), prices.get(s.sku_id)) for s in snapshot.seats
    ]
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
        notes=[*snapshot.notes, *_price_notes(figures, prices)],
    )
    held_anywhere = {h.sku_id for u in snapshot.users for h in u.licenses}
    overlaps = overlap_table(catalog, held_anywhere | {s.sku_id for s in snapshot.seats})
    reclaim: list[ReclaimItem] = []
    departments: dict[str, CostGroup] = {}
    countries: dict[str, CostGroup] = {}
    unknown = 0
    for user in snapshot.users:
        # A user whose sign-in activity is unknown is neither inactive nor never signed in.
        if user.enabled and snapshot.sign_in_available and user.sign_in_unknown:
            unknown += 1
        account = _account_finding(user, snapshot, inactive_days)
        reclaim.extend(_reclaim_items(result, user, account, overlaps))
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
    result.reclaim = sorted(
        reclaim, key=lambda r: (RECLAIM_ORDER[r.category], r.user.upn.casefold(), r.sku_id)
    )
    result.departments = sorted(departments.values(), key=lambda c: c.label.casefold())
    result.countries = sorted(countries.values(), key=lambda c: c.label.casefold())
    if previous is not None:
        result.changes = _changes(result, previous)
    return result


def _price_notes(figures: list[SkuFigures], prices: PriceList) -> list[str]:
    """What the Summary says about missing prices, then the price file's warnings."""
    notes = []
    if not prices.prices:
        given = f" ({prices.source.name} has none filled in)" if prices.source else " (--prices)"
        notes.append(f"No prices were given{given}: cost columns say 'no price'.")
    else:
        missing = [f.seats.part_number for f in figures if f.price is None]
        if missing:
            notes.append(f"No price for {len(missing)} SKU(s): {', '.join(missing)}.")
    return notes + list(prices.warnings)


def _account_finding(
    user: LicensedUser, snapshot: Snapshot, inactive_days: int
) -> tuple[str, str] | None:
    """(category, reason) of the user's account, if it makes every license reclaimable.

    At most one per user: disabled beats inactive beats never signed in. A user whose
    sign-in activity is unknown gets none for sign-in.
    """
    now, threshold = snapshot.read_at, dt.timedelta(days=inactive_days)
    if not user.enabled:
        return ("Disabled account", "The account is disabled but still holds this license.")
    if not snapshot.sign_in_available or user.sign_in_unknown:
        return None
    if user.last_sign_in is not None:
        idle = now - user.last_sign_in
        if idle <= threshold:
            return None
        return (
            "Inactive",
            f"No sign-in for {idle.days} days "
            f"(last {user.last_sign_in:%Y-%m-%d}; threshold {inactive_days}).",
        )
    if user.created is not None and now - user.created > threshold:
        return (
            "Never signed in",
            f"Never signed in; created {(now - user.created).days} "
            f"days ago ({user.created:%Y-%m-%d}): assigned but never activated.",
        )
    return None


def _reclaim_items(
    trueup: TrueUp,
    user: LicensedUser,
    account: tuple[str, str] | None,
    overlaps: dict[tuple[str, str], float],
) -> list[ReclaimItem]:
    """The user's licenses to reclaim: for the account, overlapping, direct beside group."""
    catalog, group_name = trueup.catalog, trueup.group_name
    items = []
    held_ids = {h.sku_id for h in user.licenses}
    for held in user.licenses:
        price = trueup.prices.get(held.sku_id)
        source = _source(held, group_name)
        action = _removal_action(held, group_name)
        if account:
            items.append(
                ReclaimItem(account[0], user, held.sku_id, source, account[1], action, price, True)
            )
        containers = [
            outer for (inner, outer) in overlaps if inner == held.sku_id and outer in held_ids
        ]
        if containers:
            outer_names = " and ".join(catalog.friendly_name(o) for o in sorted(containers))
            share = max(overlaps[(held.sku_id, o)] for o in containers)
            reason = (
                f"{catalog.friendly_name(held.sku_id)} is contained in {outer_names}, "
                f"which the user also holds ({share:.0%} of its service plans are included)."
            )
            items.append(
                ReclaimItem(
                    "Overlapping license", user, held.sku_id, source, reason, action, price, True
                )
            )
        if held.direct and held.groups:
            items.append(
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
    return items


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
        for measure, then_value, now_value in (
            ("Purchased", before[1] if before else 0, after.seats.enabled if after else 0),
            ("Assigned", before[2] if before else 0, after.seats.consumed if after else 0),
        ):
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


def summary_lines(trueup: TrueUp) -> list[str]:
    """The short console summary of a true-up."""
    seats, saving = trueup.reclaimable()
    money = ", ".join(
        f"{amount:,.2f} {currency}".strip() for currency, amount in sorted(saving.items())
    )
    if not trueup.currencies:
        money = "no prices given"
    lines = [
        f"SKUs: {len(trueup.skus)}   licensed users: {len(trueup.snapshot.users):,}   "
        f"free seats: {trueup.free_seats:,}",
        f"Reclaimable seats: {seats:,}   monthly saving: {money or '0.00'}",
        f"License errors: {len(trueup.snapshot.errors):,}   Graph: {trueup.snapshot.requests:,} "
        f"requests, {trueup.snapshot.resource_units:,.0f} resource units, "
        f"{trueup.snapshot.throttled} throttled (429)",
    ]
    if trueup.changes is not None:
        users = sum(1 for c in trueup.changes if c[0] in ("User added", "User removed"))
        lines.append(
            f"Changes since {trueup.previous.path.name if trueup.previous else '?'}: "
            f"{users} users added or removed, "
            f"{sum(1 for c in trueup.changes if c[3] in ('Purchased', 'Assigned'))} "
            "seat count changes"
        )
    return lines
