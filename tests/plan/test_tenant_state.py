"""Reading tenant facts from Graph JSON: seats per SKU, and licenses held directly or by group."""

from __future__ import annotations

from batch.tenant import seats_from_skus, user_state

E3 = "05e9a617-0261-4cee-bb44-138d3ef5d965"
O365_E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
TEAMS = "57ff2da0-773e-42df-b2af-ffb7a2317929"


def test_free_seats_exclude_warning_and_never_go_negative() -> None:
    seats = seats_from_skus(
        [
            {
                "skuId": E3.upper(),
                "skuPartNumber": "SPE_E3",
                "appliesTo": "User",
                "prepaidUnits": {"enabled": 10, "warning": 5, "suspended": 2, "lockedOut": 0},
                "consumedUnits": 12,
                "servicePlans": [{"servicePlanId": TEAMS, "servicePlanName": "TEAMS1"}],
            },
            {
                "skuId": O365_E3,
                "skuPartNumber": "ENTERPRISEPACK",
                "prepaidUnits": {"enabled": 25},
                "consumedUnits": 20,
            },
        ]
    )
    assert [s.part_number for s in seats] == ["ENTERPRISEPACK", "SPE_E3"]
    pack, e3 = seats
    assert (pack.free, pack.purchased, pack.user_assignable) == (5, 25, True)
    assert e3.sku_id == E3  # lower-cased
    assert (e3.free, e3.purchased, e3.suspended) == (0, 15, 2)
    assert e3.service_plans == ((TEAMS, "TEAMS1"),)


def test_direct_and_group_licenses_are_told_apart() -> None:
    user = {
        "id": "u1",
        "userPrincipalName": "ann@contoso.example",
        "accountEnabled": True,
        "usageLocation": "GB",
        "assignedLicenses": [
            {"skuId": E3, "disabledPlans": [TEAMS]},
            {"skuId": O365_E3, "disabledPlans": []},
        ],
        "licenseAssignmentStates": [
            {
                "skuId": E3,
                "disabledPlans": [TEAMS],
                "assignedByGroup": None,
                "state": "Active",
                "error": "None",
            },
            {
                "skuId": E3,
                "disabledPlans": [],
                "assignedByGroup": "g1",
                "state": "Active",
                "error": "None",
            },
            {
                "skuId": O365_E3,
                "disabledPlans": [],
                "assignedByGroup": "g2",
                "state": "Error",
                "error": "CountViolation",
            },
        ],
    }
    state = user_state(user)
    assert state.direct_skus == {E3}
    e3 = state.licenses[E3]
    assert e3.direct and e3.groups == ("g1",) and e3.disabled_plans == {TEAMS}
    pack = state.licenses[O365_E3]
    assert not pack.direct and pack.inherited and pack.errors == ("CountViolation",)


def test_without_assignment_states_licenses_count_as_direct() -> None:
    state = user_state(
        {"id": "u2", "userPrincipalName": "bo@x", "assignedLicenses": [{"skuId": E3.upper()}]}
    )
    assert state.direct_skus == {E3}
    assert state.account_enabled is True and state.usage_location is None
