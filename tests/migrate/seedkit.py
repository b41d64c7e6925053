"""Seeds for migration tests: small hand-made tenants and a 2,000-user Office 365 E3 tenant."""

from __future__ import annotations

import copy
import random
import uuid
from typing import Any

from batch.simulator import load_sample

SAMPLE = load_sample()
SKUS = {s["skuPartNumber"]: s for s in SAMPLE["skus"]}
SKU_ID = {part: s["skuId"] for part, s in SKUS.items()}
DOMAIN = "contoso.example"


def plan_id(part: str, name: str) -> str:
    """The servicePlanId of plan ``name`` in SKU ``part`` (from the sample's catalog)."""
    return next(
        p["servicePlanId"] for p in SKUS[part]["servicePlans"] if p["servicePlanName"] == name
    )


def plan_names(part: str) -> list[str]:
    return [p["servicePlanName"] for p in SKUS[part]["servicePlans"]]


def sku(part: str, *, enabled: int, warning: int = 0, suspended: int = 0) -> dict[str, Any]:
    item = copy.deepcopy(SKUS[part])
    item["prepaidUnits"] = {
        "enabled": enabled,
        "warning": warning,
        "suspended": suspended,
        "lockedOut": 0,
    }
    return item


def user(
    local: str,
    licenses: dict[str, list[str]] | None = None,
    *,
    enabled: bool = True,
    location: str = "GB",
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """A user; ``licenses`` maps part numbers to the names of plans disabled in them."""
    uid = str(uuid.UUID(int=(rng or random).getrandbits(128), version=4))
    return {
        "id": uid,
        "userPrincipalName": f"{local}@{DOMAIN}",
        "displayName": local.replace(".", " ").title(),
        "givenName": local.split(".")[0].title(),
        "surname": local.split(".")[-1].title(),
        "mail": f"{local}@{DOMAIN}",
        "accountEnabled": enabled,
        "usageLocation": location,
        "department": "Sales",
        "userType": "Member",
        "licenses": [
            {"skuId": SKU_ID[part], "disabledPlans": sorted(plan_id(part, n) for n in plans)}
            for part, plans in (licenses or {}).items()
        ],
    }


def tenant(
    skus: list[dict[str, Any]],
    users: list[dict[str, Any]],
    groups: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "format": 1,
        "organization": {
            "id": "3b1f0a52-7d7e-4c55-9a40-5a2c1c0d0e01",
            "displayName": "Fabrikam (simulated)",
            "domain": DOMAIN,
            "countryLetterCode": "GB",
            "createdDateTime": "2020-01-01T00:00:00Z",
        },
        "skus": skus,
        "users": users,
        "groups": groups or [],
    }


def big_tenant(count: int = 2000, *, e3_free: int = 600) -> dict[str, Any]:
    """``count`` users on ENTERPRISEPACK with varied disabled plans; SPE_E3 with few free seats."""
    rng = random.Random(20260101)
    names = plan_names("ENTERPRISEPACK")
    users = []
    for n in range(count):
        disabled = rng.sample(names, rng.choice((0, 0, 1, 2, 3, 5)))
        users.append(
            user(
                f"user{n:05d}",
                {"ENTERPRISEPACK": disabled},
                rng=rng,
                location=rng.choice(("GB", "US", "DE", "FR")),
            )
        )
    return tenant(
        [
            sku("ENTERPRISEPACK", enabled=count + 50),
            sku("SPE_E3", enabled=e3_free),
            sku("EMS", enabled=100),
        ],
        users,
    )


def cases_tenant() -> dict[str, Any]:
    """Each kind of user a migration meets, and a same-SKU subscription in transition."""
    rng = random.Random(7)
    users = [
        user("ann.direct", {"ENTERPRISEPACK": ["SWAY", "YAMMER_ENTERPRISE"]}, rng=rng),
        user("bob.direct", {"ENTERPRISEPACK": []}, rng=rng),
        user("cat.both", {"ENTERPRISEPACK": ["SWAY"], "SPE_E3": ["INTUNE_A"]}, rng=rng),
        user("dan.group", rng=rng),
        user("eve.group", rng=rng),
        user("fay.disabled", {"ENTERPRISEPACK": ["SWAY"]}, enabled=False, rng=rng),
        user("gus.nolicense", rng=rng),
        user("hal.e5", {"SPE_E5": []}, rng=rng),
    ]
    group = {
        "id": "6c0c3f4e-5a7b-4f8e-9d1a-2b3c4d5e6f70",
        "displayName": "Licensing - Office 365 E3",
        "securityEnabled": True,
        "mailEnabled": False,
        "groupTypes": [],
        "assignedLicenses": [{"skuId": SKU_ID["ENTERPRISEPACK"], "disabledPlans": []}],
        "members": [users[3]["id"], users[4]["id"]],
    }
    return tenant(
        [
            sku("ENTERPRISEPACK", enabled=10),
            sku("SPE_E3", enabled=10),
            sku("SPE_E5", enabled=0, warning=3),
        ],
        users,
        [group],
    )
