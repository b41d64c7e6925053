"""Per-user change rules: what must change for one user to reach what a row asks.

This is the heart of planning, kept free of I/O: given a user's current licenses
(:class:`batch.run.tenant.UserState`) and what the row wants (:class:`Desire`), compute the
minimal :class:`LicenseChange`. Rules an experienced admin expects:

- Additive by default: add what is listed, remove what is listed, leave the rest. With
  ``exact`` the listed licenses are the user's full set of *direct* licenses.
- A SKU already held directly is not re-added, unless its disabled plans must change. Then
  the plans are merged deliberately: additive mode disables the listed plans on top of those
  already disabled (it never silently re-enables a plan); exact mode sets exactly the
  listed ones. Re-adding a held SKU replaces its disabledPlans in Graph, so the merged set
  is always sent whole.
- Licenses inherited from a group are never removed directly (Graph refuses; the group's
  membership is what grants them): the change says so instead.
- Adds and removes for one user go in ONE assignLicense call, so a swap never leaves the user
  unlicensed.
- A usage location is needed before a license can be assigned: the row's, else the user's,
  else the ``default_usage_location``; without one the row cannot be applied.
- Graph refuses an assignLicense whose result enables two mutually exclusive service plans
  (:data:`batch.intake.catalog.MUTUALLY_EXCLUSIVE_PLANS`) from different licenses, one of
  them a license the call adds: :func:`plan_clash` finds that before anything is sent,
  counting what the user keeps directly and inherits from groups, and the plans disabled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from batch.intake.catalog import MUTUALLY_EXCLUSIVE_PLANS
from batch.run.tenant import UserState

#: licenseAssignmentStates states whose license is in force (Error and Disabled are not)
_ACTIVE_STATES = frozenset({"active", "activewitherror"})
_EXCLUSIVE = frozenset(plan for pair in MUTUALLY_EXCLUSIVE_PLANS for plan in pair)


@dataclass(frozen=True)
class LicenseWant:
    """A license a row asks for, with the plans it wants disabled (``None``: not said)."""

    sku_id: str
    disabled_plans: frozenset[str] | None = None


@dataclass(frozen=True)
class Desire:
    """What one row asks for one user."""

    add: tuple[LicenseWant, ...] = ()
    remove: frozenset[str] = frozenset()
    usage_location: str | None = None
    offboard: bool = False
    exact: bool = False  # the listed licenses are the user's whole set of direct licenses
    exact_plans: bool = False  # the listed disabled plans replace the user's, never merge
    leaving: frozenset[str] = frozenset()  # ids of the groups the user leaves in the same row


@dataclass
class LicenseChange:
    """The minimal change for one user, and what the planner should tell the admin."""

    add: dict[str, frozenset[str]] = field(default_factory=dict)  # sku -> disabled plans to send
    remove: list[str] = field(default_factory=list)
    usage_location: str | None = None  # set before the licenses, when not None
    notes: list[str] = field(default_factory=list)  # said in the report's Detail column
    blocked: str | None = None  # why the change cannot be made at all
    new_seats: list[str] = field(default_factory=list)  # SKUs that take a seat the user lacks
    freed_seats: list[str] = field(default_factory=list)  # SKUs whose seat is given back

    @property
    def writes_license(self) -> bool:
        return bool(self.add or self.remove)

    @property
    def empty(self) -> bool:
        return not (self.add or self.remove or self.usage_location)


def license_change(
    desire: Desire,
    state: UserState,
    *,
    default_usage_location: str | None = None,
    name: dict[str, str] | None = None,
) -> LicenseChange:
    """The minimal license change that brings ``state`` to what ``desire`` asks.

    :param name: SKU id -> part number, for readable notes.
    """
    names = name or {}

    def label(sku: str) -> str:
        return names.get(sku, sku)

    change = LicenseChange()
    wanted = {w.sku_id: w for w in desire.add}

    for sku, want in wanted.items():
        held = state.licenses.get(sku)
        if held is None:
            change.add[sku] = want.disabled_plans or frozenset()
            change.new_seats.append(sku)
            continue
        if not held.direct:
            change.notes.append(f"{label(sku)} already held through a group")
            continue
        target = _target_plans(
            held.disabled_plans, want.disabled_plans, exact=desire.exact or desire.exact_plans
        )
        if target != held.disabled_plans:
            change.add[sku] = target
            change.notes.append(f"{label(sku)} disabled plans updated")

    removals = set(desire.remove)
    if desire.offboard:
        removals |= set(state.licenses)
    if desire.exact:
        removals |= {sku for sku in state.direct_skus if sku not in wanted}
    for sku in sorted(removals, key=label):
        held = state.licenses.get(sku)
        if held is None:
            if sku in desire.remove:
                change.notes.append(f"{label(sku)} not held")
            continue
        if held.direct:
            change.remove.append(sku)
            if not held.inherited:
                change.freed_seats.append(sku)
            else:
                change.notes.append(f"{label(sku)} stays through a group after the direct one goes")
        elif held.groups and set(held.groups) <= desire.leaving:
            change.notes.append(f"{label(sku)} goes with the group the user leaves")
        elif sku in desire.remove or desire.offboard:
            change.notes.append(
                f"{label(sku)} is inherited from a group and cannot be removed directly: "
                "remove the user from the group"
            )

    wanted_location = (desire.usage_location or "").upper() or None
    current = (state.usage_location or "").upper() or None
    if wanted_location and wanted_location != current:
        change.usage_location = wanted_location
    elif change.add and not current:
        if default_usage_location:
            change.usage_location = default_usage_location.upper()
            change.notes.append(f"usage location {change.usage_location} (default)")
        else:
            change.blocked = (
                "the user has no usage location: add a UsageLocation column or pass "
                "--default-usage-location"
            )
    return change


def _target_plans(
    current: frozenset[str], wanted: frozenset[str] | None, *, exact: bool
) -> frozenset[str]:
    if wanted is None:  # the row says nothing about plans: keep the user's
        return current
    return wanted if exact else current | wanted


@dataclass(frozen=True)
class PlanClash:
    """Two mutually exclusive plans a change would enable together, and where each is from.

    ``sku_id``/``plan_id`` are the side of a license the change adds; the other side is held
    directly (``other_group`` None, ``other_added`` False), inherited from ``other_group``,
    or added by the same change (``other_added``).
    """

    sku_id: str
    plan_id: str
    other_sku_id: str
    other_plan_id: str
    other_group: str | None = None
    other_added: bool = False


@dataclass(frozen=True)
class _Source:
    """One assignment of a SKU to the user: direct (``group`` None) or through a group."""

    sku_id: str
    group: str | None
    disabled: frozenset[str]


def plan_clash(
    state: UserState, change: LicenseChange, sku_plans: Mapping[str, Iterable[str]]
) -> PlanClash | None:
    """The mutually exclusive pair Graph would refuse ``change`` for, or None.

    The user's licenses after the change are every assignment kept (inherited ones always:
    leaving a group takes its licenses away only later, when Entra processes the group),
    the direct ones the change removes gone and those it adds or re-adds as sent. A plan
    is on when some assignment of its SKU leaves it enabled. The change is refused when an
    exclusive pair is on from two different SKUs, one of them a SKU the change adds (or
    re-adds with other disabled plans), as Graph checks it.

    :param sku_plans: SKU id -> its servicePlanIds (the tenant's ``subscribedSkus``).
    """
    if not any(_exclusive_plans(sku_plans.get(sku, ())) for sku in change.add):
        return None  # nothing added can clash (the common case: answered without the sources)
    replaced = set(change.add) | set(change.remove)
    after = [s for s in _sources(state) if s.group is not None or s.sku_id not in replaced]
    after += [_Source(sku, None, frozenset(plans)) for sku, plans in change.add.items()]
    # plan -> the assignments that leave it on, existing ones first (they make the clearer
    # "other side"), in the order the user holds them
    enabled: dict[str, list[_Source]] = {}
    for source in sorted(after, key=lambda s: s.group is None and s.sku_id in change.add):
        for plan in _exclusive_plans(sku_plans.get(source.sku_id, ())):
            if plan not in source.disabled:
                enabled.setdefault(plan, []).append(source)
    for first, second in MUTUALLY_EXCLUSIVE_PLANS:
        for ours, theirs in ((first, second), (second, first)):
            for mine in enabled.get(ours, []):
                if mine.sku_id not in change.add:
                    continue
                for other in enabled.get(theirs, []):
                    if other.sku_id != mine.sku_id:
                        return PlanClash(
                            sku_id=mine.sku_id,
                            plan_id=ours,
                            other_sku_id=other.sku_id,
                            other_plan_id=theirs,
                            other_group=other.group,
                            other_added=other.group is None and other.sku_id in change.add,
                        )
    return None


def _exclusive_plans(plans: Iterable[str]) -> frozenset[str]:
    """The mutually exclusive plans among a SKU's ``plans`` (lower case)."""
    if isinstance(plans, frozenset):
        return _exclusive_of_set(plans)
    return frozenset(p.lower() for p in plans) & _EXCLUSIVE


@lru_cache(maxsize=256)
def _exclusive_of_set(plans: frozenset[str]) -> frozenset[str]:
    return frozenset(p.lower() for p in plans) & _EXCLUSIVE


def _sources(state: UserState) -> list[_Source]:
    """Every assignment in force, from ``licenseAssignmentStates`` when the state has them."""
    raw = state.raw.get("licenseAssignmentStates") if state.raw else None
    if raw:
        return [
            _Source(
                str(entry["skuId"]).lower(),
                str(entry["assignedByGroup"]) if entry.get("assignedByGroup") else None,
                frozenset(str(p).lower() for p in entry.get("disabledPlans") or []),
            )
            for entry in raw
            if str(entry.get("state") or "Active").casefold() in _ACTIVE_STATES
        ]
    sources = []
    for sku, held in state.licenses.items():
        if held.direct:
            sources.append(_Source(sku, None, held.disabled_plans))
        sources += [_Source(sku, group, held.disabled_plans) for group in held.groups]
    return sources
