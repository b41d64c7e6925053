"""Reading tenant facts from Graph JSON: seats per SKU, and licenses held directly or by group."""

from __future__ import annotations

import pytest

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


class _Stats:
    def __init__(self, single: float, batch: float) -> None:
        self.single, self.batch = single, batch

    def round_trips(self) -> tuple[float, float]:
        return self.single, self.batch


class _Directory:
    """A stand-in client that records how users were read."""

    def __init__(self, size: int | None, single: float = 0.2, batch: float = 0.4) -> None:
        self.size = size
        self.calls: list[str] = []
        self.stats = _Stats(single, batch)
        self.facts: dict = {}

    def get(self, path: str, params: dict, headers: dict | None = None) -> dict:
        self.calls.append("count")
        return {"@odata.count": self.size, "value": []} if self.size is not None else {"value": []}

    def get_all(self, path: str, params: dict) -> list[dict]:
        self.calls.append("page-all")
        return [{"id": f"id{i}", "userPrincipalName": f"u{i}@x.example"} for i in range(5)]

    def resolve_users(self, names: list[str], select: list[str]) -> dict:
        self.calls.append("lookup")
        return {n: {"id": n, "userPrincipalName": n} for n in names}


def test_reading_is_chosen_by_expected_wall_time() -> None:
    from batch.run.tenant import choose_reading, lookup_seconds, paging_seconds

    # 200 ms a request, 400 ms a batch of lookups: 2,000 users are 7 batches, all in flight
    assert lookup_seconds(2_000, 0.4) == pytest.approx(0.4)
    assert paging_seconds(20_000, 0.2) == pytest.approx(21 * 0.3)
    for users in (1, 50, 2_000, 10_000, 20_000):  # lookups beat paging even these users alone
        assert choose_reading(users, round_trip=0.2, batch_round_trip=0.4) == "lookup"
    # 100,000 users: 6,667 lookups pass the read budget (1,750 RU per 10 s) and wait
    assert lookup_seconds(100_000, 0.4) == pytest.approx(42 * 0.4 + 3 * 10)
    assert choose_reading(100_000, round_trip=0.2, batch_round_trip=0.4) == "count"
    big = {"round_trip": 0.2, "batch_round_trip": 0.4}
    assert choose_reading(100_000, directory=100_000, **big) == "page"
    assert choose_reading(100_000, directory=1_000_000, **big) == "lookup"
    # not by request count: 5,000 users are 334 lookups in 17 batches, or 21 pages of a
    # 20,000-user directory; when batches are slow (10 s each), the pages win
    slow = {"round_trip": 0.05, "batch_round_trip": 10.0}
    assert choose_reading(5_000, **slow) == "count"
    assert choose_reading(5_000, directory=20_000, **slow) == "page"
    assert choose_reading(5_000, directory=20_000, **big) == "lookup"


def test_the_directory_size_is_asked_only_when_the_choice_needs_it() -> None:
    from batch.run.tenant import read_users

    small = _Directory(size=100_000)
    read_users(small, [f"u{i}@x.example" for i in range(50)])
    assert small.calls == ["lookup"]  # an obvious choice: no $count round trip
    sheet = _Directory(size=20_000)
    read_users(sheet, [f"u{i}@x.example" for i in range(2_000)])
    assert sheet.calls == ["lookup"]
    everyone = _Directory(size=100_000)
    found = read_users(everyone, [f"u{i}@x.example" for i in range(100_000)])
    assert everyone.calls == ["count", "page-all"] and len(found) == 5
    read_users(everyone, [f"u{i}@x.example" for i in range(100_000)])  # the size is known
    assert everyone.calls == ["count", "page-all", "page-all"]
    big_tenant = _Directory(size=1_000_000)
    read_users(big_tenant, [f"u{i}@x.example" for i in range(100_000)])
    assert big_tenant.calls == ["count", "lookup"]
    unknown = _Directory(size=None)
    read_users(unknown, [f"u{i}@x.example" for i in range(100_000)])
    assert unknown.calls == ["count", "lookup"]
    nobody = _Directory(size=10)
    assert read_users(nobody, ["", "  "]) == {} and nobody.calls == []
