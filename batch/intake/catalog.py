"""Catalog: SKU and service-plan names, from Microsoft's reference merged with the tenant.

The shipped reference (``batch/data/sku-catalog.json``, built by
``scripts/build_sku_catalog.py`` from Microsoft's "Product names and service plan
identifiers for licensing" CSV) knows the friendly product names; the tenant's
``GET /subscribedSkus`` items know what the tenant actually has (seats, ``appliesTo``,
``capabilityStatus``, the service plans as the tenant sees them). :class:`Catalog` merges
the two, keyed on the SKU GUID (names are not unique keys), and resolves what people write
in sheets:

* a license as a part number (``SPE_E3``), a product name ("Microsoft 365 E3",
  case-insensitive), a skuId GUID (any case, braces or not) or a legacy ``tenant:SKU``
  (MSOnline's AccountSkuId);
* a service plan as ``PLAN``, ``SKU:PLAN`` or a servicePlanId GUID, within a SKU.

The tenant wins whenever it knows a fact; SKUs the reference lags behind on keep their part
number as their name.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = [
    "COMMON_PART_NUMBERS",
    "EXCLUSIVE_PLANS",
    "MUTUALLY_EXCLUSIVE_PLANS",
    "SHORT_NAMES",
    "Catalog",
    "ServicePlan",
    "Sku",
    "name_ids",
    "name_parts",
    "normalise_guid",
    "part_namer",
    "plan_label",
    "short_key",
    "sku_label",
    "product_name",
    "subscribed_skus_from_catalog",
]

_GUID = re.compile(
    r"^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$"
)

#: SKUs most tenants buy; the generic input template lists these.
COMMON_PART_NUMBERS = (
    "SPE_E3",
    "SPE_E5",
    "SPE_F1",
    "ENTERPRISEPACK",
    "ENTERPRISEPREMIUM",
    "STANDARDPACK",
    "DESKLESSPACK",
    "SPB",
    "O365_BUSINESS_PREMIUM",
    "O365_BUSINESS_ESSENTIALS",
    "EMS",
    "EMSPREMIUM",
    "EXCHANGESTANDARD",
    "POWER_BI_PRO",
    "VISIOCLIENT",
    "PROJECTPREMIUM",
    "Microsoft_365_Copilot",
)


#: what people write for a license -> the part numbers they may mean (most likely first)
SHORT_NAMES: dict[str, tuple[str, ...]] = {
    "e1": ("STANDARDPACK",),
    "e3": ("SPE_E3", "ENTERPRISEPACK"),
    "e5": ("SPE_E5", "ENTERPRISEPREMIUM"),
    "f1": ("M365_F1",),
    "f3": ("SPE_F1", "DESKLESSPACK"),
    "a1": ("M365EDU_A1",),
    "a3": ("M365EDU_A3_FACULTY", "M365EDU_A3_STUDENT", "ENTERPRISEPACKPLUS_FACULTY"),
    "a5": ("M365EDU_A5_FACULTY", "M365EDU_A5_STUDENT", "ENTERPRISEPREMIUM_FACULTY"),
    "m365e3": ("SPE_E3",),
    "m365e5": ("SPE_E5",),
    "m365f3": ("SPE_F1",),
    "o365e1": ("STANDARDPACK",),
    "o365e3": ("ENTERPRISEPACK",),
    "o365e5": ("ENTERPRISEPREMIUM",),
    "o365f3": ("DESKLESSPACK",),
    "businessbasic": ("O365_BUSINESS_ESSENTIALS",),
    "businessstandard": ("O365_BUSINESS_PREMIUM",),
    "businesspremium": ("SPB",),
    "visio": ("VISIOCLIENT",),
    "project": ("PROJECTPROFESSIONAL", "PROJECTPREMIUM"),
    "powerbi": ("POWER_BI_PRO",),
    "powerbipro": ("POWER_BI_PRO",),
    "pbipro": ("POWER_BI_PRO",),
    "ems": ("EMS",),
    "copilot": ("Microsoft_365_Copilot",),
}
"""The common short names of licenses (E3, Business Basic, Visio...). Never accepted as a
license on their own (E3 is two products): a cell that says "E3" is refused with these as
"did you mean" suggestions. Keys are :func:`short_key` of what people write."""

_SHORT_PREFIXES = ("microsoft365", "office365", "microsoft", "office", "ms")


def short_key(text: str) -> str:
    """``text`` without case, spaces, dashes and underscores, for :data:`SHORT_NAMES`."""
    key = re.sub(r"[\s_\-]+", "", text.split(":", 1)[-1]).casefold()
    for prefix in _SHORT_PREFIXES:
        rest = key.removeprefix(prefix)
        if rest != key and rest in SHORT_NAMES:
            return rest
    return key


EXCLUSIVE_PLANS: dict[str, tuple[str, str]] = {
    "4a82b400-a79f-41a4-b4e2-e94f5787b113": ("EXCHANGE_S_DESKLESS", "Exchange Online Kiosk"),
    "9aaf7827-d63c-4b61-89c3-182f06f82e5c": ("EXCHANGE_S_STANDARD", "Exchange Online (Plan 1)"),
    "efb87545-963c-4e0d-99df-69c6916d9eb0": ("EXCHANGE_S_ENTERPRISE", "Exchange Online (Plan 2)"),
}
"""servicePlanId -> (servicePlanName, name shown to people) of the plans in
:data:`MUTUALLY_EXCLUSIVE_PLANS` (Microsoft's own capitalisation varies from row to row of
its reference, so the names shown are kept here)."""

MUTUALLY_EXCLUSIVE_PLANS: tuple[tuple[str, str], ...] = (
    ("9aaf7827-d63c-4b61-89c3-182f06f82e5c", "efb87545-963c-4e0d-99df-69c6916d9eb0"),
    ("4a82b400-a79f-41a4-b4e2-e94f5787b113", "9aaf7827-d63c-4b61-89c3-182f06f82e5c"),
    ("4a82b400-a79f-41a4-b4e2-e94f5787b113", "efb87545-963c-4e0d-99df-69c6916d9eb0"),
)
"""Pairs of service plans Entra never lets be on together for one user.

Entra does not stack the Exchange Online mailbox plans: Exchange Online Kiosk
(EXCHANGE_S_DESKLESS), Plan 1 (EXCHANGE_S_STANDARD) and Plan 2 (EXCHANGE_S_ENTERPRISE)
exclude one another. ``assignLicense`` refuses (400, "License assignment failed because
service plans <a>, <b> are mutually exclusive.") a change whose result would enable two
of them from different licenses, whether the other license is held directly or inherited
from a group; a plan switched off in ``disabledPlans`` does not count. Group-based
licensing puts such a license in error (``MutuallyExclusiveViolation``) instead.

This is the product's own list, from Microsoft's documentation of these plans and
Graph's answers; Graph offers no way to read it. It is deliberately not the simulator's
copy (``batch.simulator.catalog.MUTUALLY_EXCLUSIVE``, which plays Graph in tests): the
product never reads the simulator. The planner refuses such a row before sending it
(:func:`batch.run.changes.plan_clash`). Add a pair here when Microsoft documents another.
"""


def normalise_guid(text: str) -> str | None:
    """The lower-case GUID in ``text`` (braces allowed), or None if it is not a GUID."""
    match = _GUID.match(text.strip())
    return match.group(1).lower() if match else None


def _key(text: str) -> str:
    """Case- and whitespace-insensitive key for names (NBSP and tabs included)."""
    return " ".join(text.replace("\u00a0", " ").split()).casefold()


@dataclass(frozen=True)
class ServicePlan:
    """A service plan inside a SKU."""

    id: str
    name: str
    friendly_name: str = ""


@dataclass(frozen=True)
class Sku:
    """A SKU as the catalog knows it; tenant fields are None when the tenant lacks it."""

    id: str
    part_number: str
    #: Microsoft's product display names (first is the one shown); may be empty
    names: tuple[str, ...] = ()
    plans: tuple[ServicePlan, ...] = ()
    in_tenant: bool = False
    applies_to: str | None = None  #: "User" or "Company" (tenant only)
    capability_status: str | None = None
    enabled_units: int = 0
    warning_units: int = 0
    suspended_units: int = 0
    consumed_units: int = 0

    @property
    def name(self) -> str:
        """Friendly product name for reports, falling back to the part number."""
        return self.names[0] if self.names else self.part_number

    @property
    def free_units(self) -> int:
        """Seats that can take a new assignment: enabled minus consumed (never negative)."""
        return max(self.enabled_units - self.consumed_units, 0)

    def find_plan(self, text: str) -> ServicePlan | None:
        """A plan of this SKU by name (any case) or servicePlanId GUID."""
        guid = normalise_guid(text)
        wanted = _key(text)
        for plan in self.plans:
            if (guid and plan.id == guid) or _key(plan.name) == wanted:
                return plan
        return None


@dataclass
class Catalog:
    """Every known SKU by GUID, with indexes for resolving names."""

    skus: dict[str, Sku]
    _by_part: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _by_name: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for sku in self.skus.values():
            self._by_part.setdefault(_key(sku.part_number), []).append(sku.id)
            for name in sku.names:
                self._by_name.setdefault(_key(name), []).append(sku.id)

    @classmethod
    def load(cls, subscribed_skus: Iterable[Mapping[str, Any]] | None = None) -> Catalog:
        """The shipped reference merged with the tenant's ``subscribedSkus`` items."""
        reference = _reference()
        skus = dict(reference)
        for item in subscribed_skus or ():
            sku_id = normalise_guid(str(item.get("skuId", "")))
            if not sku_id:
                continue
            known = reference.get(sku_id)
            plan_names = {p.id: p for p in known.plans} if known else {}
            plans = []
            for plan in item.get("servicePlans") or ():
                plan_id = normalise_guid(str(plan.get("servicePlanId", "")))
                if plan_id:
                    friendly = plan_names[plan_id].friendly_name if plan_id in plan_names else ""
                    plans.append(
                        ServicePlan(plan_id, str(plan.get("servicePlanName") or plan_id), friendly)
                    )
            prepaid = item.get("prepaidUnits") or {}
            skus[sku_id] = Sku(
                id=sku_id,
                part_number=str(
                    item.get("skuPartNumber") or (known.part_number if known else sku_id)
                ).strip(),
                names=known.names if known else (),
                plans=tuple(plans) or (known.plans if known else ()),
                in_tenant=True,
                applies_to=item.get("appliesTo"),
                capability_status=item.get("capabilityStatus"),
                enabled_units=int(prepaid.get("enabled") or 0),
                warning_units=int(prepaid.get("warning") or 0),
                suspended_units=int(prepaid.get("suspended") or 0),
                consumed_units=int(item.get("consumedUnits") or 0),
            )
        return cls(skus)

    @property
    def tenant_skus(self) -> list[Sku]:
        """The tenant's SKUs, by part number."""
        return sorted(
            (s for s in self.skus.values() if s.in_tenant), key=lambda s: s.part_number.lower()
        )

    def get(self, sku_id: str) -> Sku | None:
        """The SKU with this GUID (any case, braces allowed)."""
        guid = normalise_guid(sku_id)
        return self.skus.get(guid) if guid else None

    def friendly_name(self, sku_id: str) -> str:
        """A product name for reports: Microsoft's name, else the part number, else the id."""
        sku = self.get(sku_id)
        return sku.name if sku else sku_id

    def find_skus(self, text: str) -> list[Sku]:
        """Every SKU ``text`` can mean, tenant SKUs first; [] when it means none.

        Accepts a skuId GUID, a part number, a product name or ``tenant:PART``.
        """
        text = text.strip()
        if not text:
            return []
        guid = normalise_guid(text)
        if guid:
            return [self.skus[guid]] if guid in self.skus else []
        ids = self._by_part.get(_key(text)) or self._by_name.get(_key(text))
        if not ids and ":" in text:
            # MSOnline wrote licenses as "contoso:ENTERPRISEPACK" (AccountSkuId).
            ids = self._by_part.get(_key(text.split(":", 1)[1]))
        found = [self.skus[i] for i in dict.fromkeys(ids or [])]
        return sorted(found, key=lambda s: not s.in_tenant)

    def suggestions(self, text: str) -> list[Sku]:
        """SKUs ``text`` may mean: a common short name's products, else the closest name.

        Tenant SKUs come first; an empty list when nothing is close.
        """
        parts = SHORT_NAMES.get(short_key(text), ())
        found = [self.skus[i] for p in parts for i in self._by_part.get(_key(p), [])[:1]]
        if not found:
            close = self.suggest(text)
            found = self.find_skus(close)[:1] if close else []
        return sorted(dict.fromkeys(found), key=lambda s: not s.in_tenant)

    def did_you_mean(self, text: str) -> str:
        """The sentence " Did you mean SPE_E3 (Microsoft 365 E3) or ...?", or "" if none."""
        found = self.suggestions(text)
        if not found:
            return ""
        named = [
            f"{s.part_number} ({s.name}{'' if s.in_tenant else ', not in this tenant'})"
            for s in found
        ]
        listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " or " + named[-1]
        return f" Did you mean {listed}?"

    @staticmethod
    def plan_did_you_mean(text: str, skus: Iterable[Sku]) -> str:
        """The sentence " Did you mean PLAN (Friendly name)?" from the plans of ``skus``, or ""."""
        wanted = short_key(text)
        plans: dict[str, ServicePlan] = {}
        for sku in skus:
            for plan in sku.plans:
                plans.setdefault(plan.name, plan)
        keys = {short_key(p.name): p for p in plans.values()}
        keys.update({short_key(p.friendly_name): p for p in plans.values() if p.friendly_name})
        contained = [k for k in keys if len(wanted) > 2 and wanted in k]
        contained.sort(key=lambda k: (k != wanted, not k.startswith(wanted), len(k)))
        hits = [keys[k] for k in contained]
        hits += [keys[k] for k in difflib.get_close_matches(wanted, list(keys), n=3, cutoff=0.75)]
        found = list(dict.fromkeys(hits))[:3]
        if not found:
            return ""
        named = [f"{p.name} ({p.friendly_name})" if p.friendly_name else p.name for p in found]
        listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " or " + named[-1]
        return f" Did you mean {listed}?"

    def suggest(self, text: str) -> str | None:
        """The closest part number or product name to ``text`` (tenant SKUs preferred)."""
        wanted = _key(text.split(":", 1)[-1])
        tenant = [s for s in self.skus.values() if s.in_tenant]
        for pool in (tenant, list(self.skus.values())):
            choices: dict[str, str] = {}
            for sku in pool:
                choices.setdefault(_key(sku.part_number), sku.part_number)
                for name in sku.names:
                    choices.setdefault(_key(name), name)
            close = difflib.get_close_matches(wanted, list(choices), n=1, cutoff=0.75)
            if close:
                return choices[close[0]]
        return None


@lru_cache(maxsize=1)
def _reference() -> dict[str, Sku]:
    """The shipped reference, parsed once per process."""
    text = resources.files("batch").joinpath("data/sku-catalog.json").read_text(encoding="utf-8")
    document = json.loads(text)
    plans = {pid: ServicePlan(pid, names[0], names[1]) for pid, names in document["plans"].items()}
    return {
        item["id"]: Sku(
            id=item["id"],
            part_number=item["partNumber"],
            names=tuple(item["names"]),
            plans=tuple(plans[p] for p in item["plans"] if p in plans),
        )
        for item in document["skus"]
    }


def product_name(sku_id: str) -> str | None:
    """Microsoft's product name for a skuId (any case, braces allowed), or None if unknown."""
    guid = normalise_guid(sku_id)
    sku = _reference().get(guid) if guid else None
    return sku.name if sku and sku.names else None


_GUID_IN_TEXT = re.compile(
    r"(?<![0-9a-fA-F-])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"(?![0-9a-fA-F-])"
)


@lru_cache(maxsize=1)
def _plans_by_id() -> dict[str, ServicePlan]:
    plans = {p.id: p for sku in _reference().values() for p in sku.plans}
    for plan_id, (name, friendly) in EXCLUSIVE_PLANS.items():
        plans[plan_id] = ServicePlan(plan_id, name, friendly)
    return plans


def plan_label(plan_id: str) -> str | None:
    """ "Exchange Online (Plan 1) (EXCHANGE_S_STANDARD)" for a servicePlanId, or None."""
    guid = normalise_guid(plan_id)
    plan = _plans_by_id().get(guid) if guid else None
    if plan is None:
        return None
    return f"{plan.friendly_name} ({plan.name})" if plan.friendly_name else plan.name


def sku_label(part_number: str, name: str | None) -> str:
    """ "Microsoft 365 E3 (SPE_E3)": a product name with its part number (the part alone when
    the name is unknown or the same)."""
    if not name or name == part_number:
        return part_number
    return f"{name} ({part_number})"


def name_ids(text: str) -> str:
    """``text`` with every known skuId and servicePlanId GUID replaced by its names.

    Graph's errors name plans and SKUs by GUID ("service plans 9aaf7827-..., efb87545-...
    are mutually exclusive"); people know them as Exchange Online (Plan 1) and (Plan 2).
    Other GUIDs (users, requests) are left as they are.
    """
    if "-" not in text:
        return text

    def named(match: re.Match[str]) -> str:
        guid = match.group(0).lower()
        sku = _reference().get(guid)
        if sku is not None:
            return sku_label(sku.part_number, sku.name)
        return plan_label(guid) or match.group(0)

    return _GUID_IN_TEXT.sub(named, text)


def name_parts(text: str, names: Mapping[str, str]) -> str:
    """``text`` with each part number of ``names`` (part -> product name) as "Name (PART)".

    A part number already in parentheses (after its name) is left alone.
    """
    wanted = {p: n for p, n in names.items() if n and n != p}
    if not text or not wanted:
        return text
    pattern = _parts_pattern(tuple(sorted(wanted, key=len, reverse=True)))
    return pattern.sub(lambda m: sku_label(m.group(0), wanted[m.group(0)]), text)


def part_namer(names: Mapping[str, str]) -> Callable[[str], str]:
    """:func:`name_parts` with ``names`` fixed, for the many cells of one report: the pattern
    is built once and each distinct text named once."""
    wanted = {p: n for p, n in names.items() if n and n != p}
    if not wanted:
        return str
    pattern = _parts_pattern(tuple(sorted(wanted, key=len, reverse=True)))

    def label(match: re.Match[str]) -> str:
        return sku_label(match.group(0), wanted[match.group(0)])

    @lru_cache(maxsize=4096)
    def named(text: str) -> str:
        return pattern.sub(label, text) if text else text

    return named


@lru_cache(maxsize=32)
def _parts_pattern(parts: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(p) for p in parts)
    return re.compile(rf"(?<![\w(])(?:{alternatives})(?![\w)])")


def subscribed_skus_from_catalog(
    part_numbers: Iterable[str],
    *,
    enabled: int = 25,
    consumed: int = 0,
    applies_to: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Graph ``subscribedSkus`` items for reference SKUs: offline templates and tests."""
    reference = _reference()
    by_part = {s.part_number.casefold(): s for s in reference.values()}
    items = []
    for part in part_numbers:
        sku = by_part[part.casefold()]
        items.append(
            {
                "skuId": sku.id,
                "skuPartNumber": sku.part_number,
                "appliesTo": (applies_to or {}).get(sku.part_number, "User"),
                "capabilityStatus": "Enabled",
                "consumedUnits": consumed,
                "prepaidUnits": {"enabled": enabled, "suspended": 0, "warning": 0, "lockedOut": 0},
                "servicePlans": [
                    {
                        "servicePlanId": p.id,
                        "servicePlanName": p.name,
                        "provisioningStatus": "Success",
                        "appliesTo": "User",
                    }
                    for p in sku.plans
                ],
            }
        )
    return items
