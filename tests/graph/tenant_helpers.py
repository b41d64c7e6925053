"""Helpers that read the simulated tenant through the client, to pick users and SKUs."""

from __future__ import annotations

from typing import Any

from batch.graph.client import GraphClient
from batch.graph.engine import Operation, assign_license


def free_sku(client: GraphClient, seats: int) -> str:
    """A user-assignable skuId with at least ``seats`` free seats and no plan conflicts."""
    best = None
    for sku in client.get("/subscribedSkus").get("value", []):
        free = sku["prepaidUnits"]["enabled"] - sku["consumedUnits"]
        usable = sku.get("appliesTo") == "User" and sku.get("capabilityStatus") == "Enabled"
        if usable and free >= seats and (best is None or free > best[0]):
            best = (free, sku["skuId"])
    assert best is not None, "the sample tenant has no SKU with enough free seats"
    return best[1]


def users_without(client: GraphClient, sku: str, count: int) -> list[dict[str, Any]]:
    """``count`` enabled users with a usage location who do not hold ``sku``."""
    picked = []
    for user in client.get_all(
        "/users",
        {
            "$select": "id,userPrincipalName,usageLocation,assignedLicenses,accountEnabled",
            "$top": 999,
        },
    ):
        held = {lic["skuId"] for lic in user.get("assignedLicenses") or []}
        if user.get("usageLocation") and sku not in held:
            picked.append(user)
        if len(picked) == count:
            return picked
    raise AssertionError(f"only {len(picked)} users without {sku}")


def add_ops(users: list[dict[str, Any]], sku: str) -> list[Operation]:
    """One assignLicense adding ``sku`` per user, keyed like planner rows."""
    return [
        assign_license(f"row {i + 2}: add {u['userPrincipalName']}", u["id"], add={sku: []})
        for i, u in enumerate(users)
    ]


def remove_ops(users: list[dict[str, Any]], sku: str) -> list[Operation]:
    """Take ``sku`` away again (to leave the shared tenant as found)."""
    return [assign_license(f"undo {u['id']}", u["id"], remove=[sku]) for u in users]
