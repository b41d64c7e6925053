"""Mutually exclusive service plans: the planner refuses what Graph would refuse, and says why."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from batch.intake.catalog import (
    EXCLUSIVE_PLANS,
    MUTUALLY_EXCLUSIVE_PLANS,
    Catalog,
    product_name,
    subscribed_skus_from_catalog,
)
from batch.intake.sources import read_sheet
from batch.intake.validate import validate_sheet
from batch.run.changes import Desire, LicenseWant, PlanClash, license_change, plan_clash
from batch.run.plan import Plan, build_plan
from batch.run.tenant import HeldLicense, UserState, seats_from_skus, user_state
from batch.status import RowStatus

KIOSK = "4a82b400-a79f-41a4-b4e2-e94f5787b113"
PLAN1 = "9aaf7827-d63c-4b61-89c3-182f06f82e5c"
PLAN2 = "efb87545-963c-4e0d-99df-69c6916d9eb0"
TEAMS = "57ff2da0-773e-42df-b2af-ffb7a2317929"

BASIC = "3b555118-da6a-4418-894f-7df1e2096870"  # O365_BUSINESS_ESSENTIALS: Exchange Plan 1
E3 = "05e9a617-0261-4cee-bb44-138d3ef5d965"  # SPE_E3: Exchange Plan 2
F3 = "4b585984-651b-448a-9e53-3b10f069cf7f"  # DESKLESSPACK: Exchange Kiosk
EMS = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"  # no Exchange
PLANS = {
    BASIC: frozenset({PLAN1, TEAMS}),
    E3: frozenset({PLAN2, TEAMS}),
    F3: frozenset({KIOSK, TEAMS}),
    EMS: frozenset(),
}
GROUP = "11111111-2222-3333-4444-555555555555"


def user(*licenses: HeldLicense) -> UserState:
    return UserState(
        id="u1",
        upn="ann@contoso.example",
        display_name="Ann",
        account_enabled=True,
        usage_location="GB",
        licenses={held.sku_id: held for held in licenses},
    )


def direct(sku: str, *disabled: str) -> HeldLicense:
    return HeldLicense(sku, frozenset(disabled), True)


def inherited(sku: str, *disabled: str) -> HeldLicense:
    return HeldLicense(sku, frozenset(disabled), False, (GROUP,))


def clash(desire: Desire, state: UserState) -> PlanClash | None:
    return plan_clash(state, license_change(desire, state), PLANS)


def add(*skus: str, disabled: tuple[str, ...] = ()) -> tuple[LicenseWant, ...]:
    return tuple(LicenseWant(s, frozenset(disabled) or None) for s in skus)


def test_the_pairs_are_the_three_exchange_plans() -> None:
    assert {frozenset(p) for p in MUTUALLY_EXCLUSIVE_PLANS} == {
        frozenset({KIOSK, PLAN1}),
        frozenset({KIOSK, PLAN2}),
        frozenset({PLAN1, PLAN2}),
    }
    assert EXCLUSIVE_PLANS[PLAN1] == ("EXCHANGE_S_STANDARD", "Exchange Online (Plan 1)")


def test_direct_plus_direct_clashes() -> None:
    found = clash(Desire(add=add(BASIC)), user(direct(E3)))
    assert found == PlanClash(BASIC, PLAN1, E3, PLAN2)


def test_direct_plus_group_inherited_clashes() -> None:
    found = clash(Desire(add=add(BASIC)), user(inherited(E3)))
    assert found == PlanClash(BASIC, PLAN1, E3, PLAN2, other_group=GROUP)


def test_two_licenses_added_in_one_row_clash() -> None:
    found = clash(Desire(add=add(F3, BASIC)), user())
    assert found is not None and found.other_added
    assert {found.plan_id, found.other_plan_id} == {KIOSK, PLAN1}


def test_disabling_the_clashing_plan_resolves_it() -> None:
    assert clash(Desire(add=add(BASIC, disabled=(PLAN1,))), user(inherited(E3))) is None


def test_the_other_license_with_the_plan_disabled_does_not_clash() -> None:
    assert clash(Desire(add=add(BASIC)), user(direct(E3, PLAN2))) is None
    assert clash(Desire(add=add(BASIC)), user(inherited(E3, PLAN2))) is None


def test_removing_the_other_license_in_the_same_row_resolves_it() -> None:
    desire = Desire(add=add(BASIC), remove=frozenset({E3}))
    assert clash(desire, user(direct(E3))) is None


def test_exact_mode_drops_the_other_direct_license_and_resolves_it() -> None:
    assert clash(Desire(add=add(BASIC), exact=True), user(direct(E3))) is None


def test_a_direct_copy_removed_leaves_the_inherited_one_clashing() -> None:
    held = HeldLicense(E3, frozenset(), True, (GROUP,))
    found = clash(Desire(add=add(BASIC), remove=frozenset({E3})), user(held))
    assert found is not None and found.other_group == GROUP


def test_nothing_added_nothing_refused() -> None:
    assert clash(Desire(add=add(EMS)), user(direct(E3), direct(BASIC, PLAN1))) is None
    assert clash(Desire(remove=frozenset({E3})), user(direct(E3))) is None


def test_a_license_already_held_is_not_a_new_clash() -> None:
    # re-asking for a held license sends nothing, so nothing can be refused
    assert clash(Desire(add=add(BASIC)), user(direct(BASIC), inherited(E3, PLAN2))) is None


def test_an_inherited_license_in_error_enables_nothing() -> None:
    raw: dict[str, Any] = {
        "id": "u1",
        "userPrincipalName": "ann@contoso.example",
        "usageLocation": "GB",
        "assignedLicenses": [],
        "licenseAssignmentStates": [
            {
                "skuId": E3,
                "assignedByGroup": GROUP,
                "disabledPlans": [],
                "state": "Error",
                "error": "CountViolation",
            }
        ],
    }
    assert clash(Desire(add=add(BASIC)), user_state(raw)) is None
    raw["licenseAssignmentStates"][0].update(state="Active", error="None")
    found = clash(Desire(add=add(BASIC)), user_state(raw))
    assert found is not None and found.other_group == GROUP


@pytest.mark.parametrize("other", [E3, F3])
def test_every_pair_is_checked_both_ways(other: str) -> None:
    assert clash(Desire(add=add(other)), user(direct(BASIC))) is not None
    assert clash(Desire(add=add(BASIC)), user(direct(other))) is not None


def test_names_come_from_the_catalog() -> None:
    assert product_name(BASIC) == "Microsoft 365 Business Basic"
    assert product_name(E3) == "Microsoft 365 E3"


def _plan_sheet(tmp_path: Path, *rows: list[str]) -> Plan:
    items = subscribed_skus_from_catalog(["SPE_E3", "O365_BUSINESS_ESSENTIALS", "EMS"])
    path = tmp_path / "sheet.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(
            [["UserPrincipalName", "AddLicenses", "RemoveLicenses", "DisabledPlans"], *rows]
        )
    validation = validate_sheet(read_sheet(path), Catalog.load(items), as_of=dt.date(2026, 1, 5))
    users = {
        upn: user_state(
            {
                "id": f"id-{upn}",
                "userPrincipalName": upn,
                "usageLocation": "US",
                "assignedLicenses": [{"skuId": E3, "disabledPlans": []}],
                "licenseAssignmentStates": [
                    {"skuId": E3, "assignedByGroup": group, "disabledPlans": [], "state": "Active"}
                ],
            }
        )
        for upn, group in (("ann@contoso.example", GROUP), ("bob@contoso.example", None))
    }
    return build_plan(
        validation, seats=seats_from_skus(items), users=users, group_names={GROUP: "E3 Users"}
    )


def test_the_planner_refuses_the_row_and_says_what_to_do(tmp_path: Path) -> None:
    plan = _plan_sheet(
        tmp_path,
        ["ann@contoso.example", "EMS; O365_BUSINESS_ESSENTIALS", "", ""],
        ["bob@contoso.example", "O365_BUSINESS_ESSENTIALS", "", ""],
    )
    ann, bob = plan.rows
    assert ann.status is RowStatus.FAILED and ann.error_code == "MutuallyExclusiveViolation"
    assert ann.detail == (
        "Microsoft 365 Business Basic's Exchange Online (Plan 1) cannot be on together with "
        "Exchange Online (Plan 2) from Microsoft 365 E3 (inherited from group 'E3 Users'): "
        "add EXCHANGE_S_STANDARD to DisabledPlans, or remove the other license."
    )
    assert ann.ops == [] and ann.added == [] and ann.removed == []
    assert bob.status is RowStatus.FAILED and "(held directly)" in bob.detail
    assert plan.ops == [] and all(s.taken == 0 for s in plan.seats)


def test_the_planner_sends_the_row_with_the_plan_disabled_or_the_other_removed(
    tmp_path: Path,
) -> None:
    plan = _plan_sheet(
        tmp_path,
        ["ann@contoso.example", "EMS; O365_BUSINESS_ESSENTIALS", "", "EXCHANGE_S_STANDARD"],
        ["bob@contoso.example", "O365_BUSINESS_ESSENTIALS", "SPE_E3", ""],
    )
    assert [r.status for r in plan.rows] == [RowStatus.PLANNED, RowStatus.PLANNED]
    ann = next(op for op in plan.ops if op.row == plan.rows[0].row)
    assert {"skuId": BASIC, "disabledPlans": [PLAN1]} in ann.body["addLicenses"]
