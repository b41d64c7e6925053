"""Shared values for the intake tests: fixture paths and a catalog like a tenant's."""

from __future__ import annotations

from pathlib import Path

from batch.intake.catalog import Catalog, subscribed_skus_from_catalog

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "intake"

#: what the test tenant holds: two Company-only / suspended SKUs for those rules
TENANT_PARTS = ("SPE_E3", "SPE_E5", "ENTERPRISEPACK", "EMS", "MCOPSTNC", "VISIOCLIENT", "MCOPSTN5")


def tenant_skus() -> list[dict[str, object]]:
    """subscribedSkus items built from the shipped catalog, with one of each awkward kind."""
    items = subscribed_skus_from_catalog(TENANT_PARTS[:-1], applies_to={"MCOPSTNC": "Company"})
    for item in items:
        if item["skuPartNumber"] == "VISIOCLIENT":
            item["capabilityStatus"] = "Suspended"
    # MCOPSTN5 has two skuIds in Microsoft's list; the tenant holds one of them.
    catalog = Catalog.load()
    mcopstn5 = [s for s in catalog.skus.values() if s.part_number == "MCOPSTN5"]
    items.append(
        {
            "skuId": mcopstn5[0].id,
            "skuPartNumber": "MCOPSTN5",
            "appliesTo": "User",
            "capabilityStatus": "Enabled",
            "consumedUnits": 0,
            "prepaidUnits": {"enabled": 5},
            "servicePlans": [],
        }
    )
    # A SKU newer than the shipped reference.
    items.append(
        {
            "skuId": "11111111-2222-4333-8444-555555555555",
            "skuPartNumber": "NEW_SKU_2027",
            "appliesTo": "User",
            "capabilityStatus": "Enabled",
            "consumedUnits": 1,
            "prepaidUnits": {"enabled": 3},
            "servicePlans": [
                {
                    "servicePlanId": "99999999-2222-4333-8444-555555555555",
                    "servicePlanName": "NEW_PLAN",
                    "appliesTo": "User",
                }
            ],
        }
    )
    return items
