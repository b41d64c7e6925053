"""Reading tenant facts from Graph JSON: seats per SKU, and licenses held directly or by group."""

from __future__ import annotations

from batch.run.tenant import seats_from_skus, user_state

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


class _Directory:
    """A stand-in client that records how users were read."""

    def __init__(self, size: int | None) -> None:
        self.size = size
        self.calls: list[str] = []

    def get(self, path: str, params: dict, headers: dict | None = None) -> dict:
        self.calls.append("count")
        return {"@odata.count": self.size, "value": []} if self.size is not None else {"value": []}

    def get_all(self, path: str, params: dict) -> list[dict]:
        self.calls.append("page-all")
        return [{"id": f"id{i}", "userPrincipalName": f"u{i}@x.example"} for i in range(5)]

    def resolve_users(self, names: list[str], select: list[str]) -> dict:
        self.calls.append("lookup")
        return {n: {"id": n, "userPrincipalName": n} for n in names}


def test_users_are_looked_up_unless_the_sheet_covers_much_of_the_directory() -> None:
    from batch.run.tenant import read_users

    small = _Directory(size=100_000)
    read_users(small, [f"u{i}@x.example" for i in range(50)])
    assert small.calls == ["lookup"]  # small sheets never ask the size
    big_sheet = _Directory(size=100_000)
    found = read_users(big_sheet, [f"u{i}@x.example" for i in range(5_000)])
    assert big_sheet.calls == ["count", "page-all"] and len(found) == 5
    big_tenant = _Directory(size=1_000_000)
    read_users(big_tenant, [f"u{i}@x.example" for i in range(5_000)])
    assert big_tenant.calls == ["count", "lookup"]
    unknown = _Directory(size=None)
    read_users(unknown, [f"u{i}@x.example" for i in range(1_000)])
    assert unknown.calls == ["count", "lookup"]
