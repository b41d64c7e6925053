"""Plan clashes, for planning: the service plans each SKU turns on, and a clash in words.

:func:`batch.run.changes.plan_clash` finds two mutually exclusive service plans that a row
would turn on together (:data:`batch.intake.catalog.EXCLUSIVE_PLANS`); :func:`sku_plans`
gives it each SKU's plans, and :func:`clash_detail` says in the row's Detail which products
clash, where the other license comes from, and how to resolve it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from batch.intake.catalog import EXCLUSIVE_PLANS, Catalog, product_name
from batch.run.changes import PlanClash
from batch.run.tenant import SkuSeats

__all__ = ["clash_detail", "sku_plans"]


def sku_plans(seats: Iterable[SkuSeats]) -> dict[str, frozenset[str]]:
    """SKU id -> its servicePlanIds: the tenant's, else Microsoft's reference."""
    result: dict[str, frozenset[str]] = {}
    reference: Catalog | None = None
    for seat in seats:
        plans = frozenset(plan_id.lower() for plan_id, _ in seat.service_plans)
        if not plans:
            reference = reference or Catalog.load()
            sku = reference.get(seat.sku_id)
            plans = frozenset(p.id for p in sku.plans) if sku else frozenset()
        result[seat.sku_id] = plans
    return result


def clash_detail(
    clash: PlanClash, label: Callable[[str], str], group_names: Mapping[str, str]
) -> str:
    """The clash in words, with what resolves it.

    :param label: SKU id -> its part number, for a SKU the catalog has no product name for.
    :param group_names: group id -> display name, to name the group a license comes from.
    """

    def product(sku: str) -> str:
        return product_name(sku) or label(sku)

    def plan(plan_id: str) -> str:
        return EXCLUSIVE_PLANS.get(plan_id, (plan_id, plan_id))[1]

    if clash.other_group is not None:
        name = group_names.get(clash.other_group, clash.other_group)
        source = f"inherited from group '{name}'"
    else:
        source = "also added by this row" if clash.other_added else "held directly"
    plan_name = EXCLUSIVE_PLANS.get(clash.plan_id, (clash.plan_id, ""))[0]
    return (
        f"{product(clash.sku_id)}'s {plan(clash.plan_id)} cannot be on together with "
        f"{plan(clash.other_plan_id)} from {product(clash.other_sku_id)} ({source}): "
        f"add {plan_name} to DisabledPlans, or remove the other license."
    )
