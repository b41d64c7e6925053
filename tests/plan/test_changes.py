"""Per-user change rules: minimal changes, swaps in one call, plans merged, groups respected."""

from __future__ import annotations

import pytest

from batch.run.changes import Desire, LicenseWant, license_change
from batch.run.tenant import HeldLicense, UserState

E3, E5, O365 = "sku-e3", "sku-e5", "sku-o365"
TEAMS, SWAY = "plan-teams", "plan-sway"


def user(*licenses: HeldLicense, location: str | None = "GB") -> UserState:
    return UserState(
        id="u1",
        upn="ann@contoso.example",
        display_name="Ann",
        account_enabled=True,
        usage_location=location,
        licenses={held.sku_id: held for held in licenses},
    )


def direct(sku: str, *disabled: str, groups: tuple[str, ...] = ()) -> HeldLicense:
    return HeldLicense(sku, frozenset(disabled), True, groups)


def inherited(sku: str, *disabled: str) -> HeldLicense:
    return HeldLicense(sku, frozenset(disabled), False, ("g1",))


def test_new_license_takes_a_seat() -> None:
    change = license_change(Desire(add=(LicenseWant(E3),)), user())
    assert change.add == {E3: frozenset()} and change.new_seats == [E3]
    assert change.remove == [] and change.usage_location is None and change.blocked is None


def test_held_license_is_not_readded() -> None:
    change = license_change(Desire(add=(LicenseWant(E3),)), user(direct(E3, TEAMS)))
    assert change.empty and change.new_seats == []


def test_swap_is_one_change_with_add_and_remove() -> None:
    change = license_change(
        Desire(add=(LicenseWant(E5),), remove=frozenset({E3})), user(direct(E3))
    )
    assert change.add == {E5: frozenset()} and change.remove == [E3]
    assert change.new_seats == [E5] and change.freed_seats == [E3]


@pytest.mark.parametrize(
    ("exact", "expected"),
    [(False, frozenset({TEAMS, SWAY})), (True, frozenset({SWAY}))],
    ids=["additive-merges", "exact-replaces"],
)
def test_disabled_plans_are_merged_deliberately(exact: bool, expected: frozenset[str]) -> None:
    desire = Desire(add=(LicenseWant(E3, frozenset({SWAY})),), exact=exact)
    change = license_change(desire, user(direct(E3, TEAMS)))
    assert change.add == {E3: expected} and change.new_seats == []


def test_group_license_is_never_removed_directly() -> None:
    change = license_change(Desire(remove=frozenset({E3})), user(inherited(E3)))
    assert change.empty
    assert "inherited from a group" in change.notes[0]


def test_direct_copy_of_group_license_can_go_without_freeing_a_seat() -> None:
    change = license_change(Desire(remove=frozenset({E3})), user(direct(E3, groups=("g1",))))
    assert change.remove == [E3] and change.freed_seats == []


def test_exact_removes_unlisted_direct_licenses_only() -> None:
    state = user(direct(E3), direct(O365), inherited(E5))
    change = license_change(Desire(add=(LicenseWant(E3),), exact=True), state)
    assert change.remove == [O365] and change.add == {}


def test_offboard_removes_every_direct_license_and_explains_inherited() -> None:
    change = license_change(Desire(offboard=True), user(direct(E3), direct(O365), inherited(E5)))
    assert sorted(change.remove) == [E3, O365]
    assert any("inherited" in note for note in change.notes)


def test_usage_location_set_before_license_and_default_used() -> None:
    change = license_change(
        Desire(add=(LicenseWant(E3),), usage_location="de"), user(location=None)
    )
    assert change.usage_location == "DE" and change.blocked is None
    change = license_change(
        Desire(add=(LicenseWant(E3),)), user(location=None), default_usage_location="us"
    )
    assert change.usage_location == "US"


def test_no_usage_location_blocks_an_add() -> None:
    change = license_change(Desire(add=(LicenseWant(E3),)), user(location=None))
    assert change.blocked is not None and "--default-usage-location" in change.blocked


def test_a_license_from_a_group_the_user_leaves_goes_with_it() -> None:
    change = license_change(Desire(offboard=True, leaving=frozenset({"g1"})), user(inherited(E3)))
    assert change.empty
    assert change.notes == ["sku-e3 goes with the group the user leaves"]
