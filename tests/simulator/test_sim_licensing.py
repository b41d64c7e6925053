"""assignLicense rules, seats, group-based licensing and the license history."""

from __future__ import annotations

import time

import pytest
from simhelpers import (
    COMMUNICATIONS_CREDITS,
    FLOW_FREE,
    POWER_BI_PRO,
    SPB,
    SPE_E3,
    SPE_E5,
    Graph,
    error_of,
    user_with,
)

from batch.simulator import RunningSimulator, SimulatorOptions
from batch.simulator.catalog import EXCHANGE_PLAN1, EXCHANGE_PLAN2, SKUS


def _sku(graph: Graph, sku_id: str) -> dict:
    return next(s for s in graph.get("/subscribedSkus").json()["value"] if s["skuId"] == sku_id)


def _free(graph: Graph, sku_id: str) -> int:
    sku = _sku(graph, sku_id)
    return sku["prepaidUnits"]["enabled"] - sku["consumedUnits"]


def _unlicensed(sim: RunningSimulator, n: int = 1) -> list[dict]:
    found = []
    db = sim.store.connection()
    for (uid,) in db.execute(
        "SELECT id FROM users WHERE usage_location IS NOT NULL "
        "AND user_type = 'Member' ORDER BY seq"
    ):
        user = sim.store.user(uid)
        if not user["licenseAssignmentStates"]:
            found.append(user)
            if len(found) == n:
                return found
    raise LookupError


@pytest.mark.parametrize(
    "body, missing",
    [
        ({"addLicenses": []}, "removeLicenses"),
        ({"removeLicenses": []}, "addLicenses"),
        ({}, "addLicenses, removeLicenses"),
    ],
)
def test_both_keys_are_required(
    graph: Graph, sim: RunningSimulator, body: dict, missing: str
) -> None:
    user = _unlicensed(sim)[0]
    response = graph.post(f"/users/{user['id']}/assignLicense", json=body)
    assert response.status_code == 400
    assert error_of(response)["message"] == (
        "One or more parameters of the operation 'assignLicense' are missing from the request "
        f"payload. The missing parameters are: {missing}."
    )


def test_assignment_errors(graph: Graph, sim: RunningSimulator) -> None:
    user = _unlicensed(sim)[0]
    unknown = "0118a350-71fc-4ec3-8f0c-6a1cb8867561"
    cases = [
        ([unknown], [], f"License {unknown} does not correspond to a valid company License."),
        (
            [COMMUNICATIONS_CREDITS],
            [],
            f"License {COMMUNICATIONS_CREDITS} cannot be assigned to a user.",
        ),
        (
            [{"skuId": FLOW_FREE, "disabledPlans": [EXCHANGE_PLAN2]}],
            [],
            f"The service plan {EXCHANGE_PLAN2} is not part of license {FLOW_FREE}.",
        ),
        ([], [FLOW_FREE], "User does not have a corresponding license."),
        ([FLOW_FREE], [FLOW_FREE], "cannot be added and removed in the same request"),
    ]
    for add, remove, message in cases:
        response = graph.assign(user["id"], add, remove)
        assert response.status_code == 400
        error = error_of(response)
        assert error["code"] == "Request_BadRequest"
        assert message in error["message"]
    assert sim.store.user_licenses(user["id"]) == set()
    assert sim.store.applied_writes() == {}


def test_usage_location_is_required(graph: Graph, sim: RunningSimulator) -> None:
    user = sim.store.user("nadia.nolocation@contoso.example")
    response = graph.assign(user["id"], [FLOW_FREE])
    assert response.status_code == 400
    assert (
        error_of(response)["message"]
        == "License assignment cannot be done for user with invalid usage location."
    )


def test_usage_location_replication_lag(graph: Graph, sim: RunningSimulator) -> None:
    sim.options.usage_location_lag = 12  # 0.6 s at time_scale 20
    user = sim.store.user("nadia.nolocation@contoso.example")
    graph.request("PATCH", f"/users/{user['id']}", json={"usageLocation": "FR"})
    assert graph.assign(user["id"], [FLOW_FREE]).status_code == 400  # not yet replicated
    deadline = time.monotonic() + 10
    while graph.assign(user["id"], [FLOW_FREE]).status_code != 200:
        assert time.monotonic() < deadline, "the usage location never reached licensing"
        time.sleep(0.05)


def test_seats_run_out(graph: Graph, sim: RunningSimulator) -> None:
    free = _free(graph, SPE_E5)
    assert 1 <= free <= 3
    users = _unlicensed(sim, free + 1)
    for user in users[:free]:
        assert graph.assign(user["id"], [SPE_E5]).status_code == 200
    last = graph.assign(users[-1]["id"], [SPE_E5])
    assert last.status_code == 400
    assert "does not have any available licenses" in error_of(last)["message"]
    assert _free(graph, SPE_E5) == 0
    # Freeing one seat lets the next assignment through.
    assert graph.assign(users[0]["id"], [], [SPE_E5]).status_code == 200
    assert graph.assign(users[-1]["id"], [SPE_E5]).status_code == 200


def test_suspended_sku_has_no_seats(graph: Graph, sim: RunningSimulator) -> None:
    visio = SKUS["VISIOCLIENT"][0]
    sku = _sku(graph, visio)
    assert sku["capabilityStatus"] == "Suspended" and sku["prepaidUnits"]["suspended"] > 0
    response = graph.assign(_unlicensed(sim)[0]["id"], [visio])
    assert "does not have any available licenses" in error_of(response)["message"]


def test_readding_a_held_sku_replaces_disabled_plans(graph: Graph, sim: RunningSimulator) -> None:
    user = sim.store.user("siobhan.o'brien@contoso.example") or sim.store.user(
        "o'brien@contoso.example"
    )
    e3 = SKUS["ENTERPRISEPACK"]
    sway = next(pid for name, pid in e3[2] if name == "SWAY")
    before = _sku(graph, e3[0])["consumedUnits"]
    response = graph.assign(user["id"], [{"skuId": e3[0], "disabledPlans": [sway]}])
    assert response.status_code == 200
    assert sim.store.user(user["id"])["assignedLicenses"] == [
        {"disabledPlans": [sway], "skuId": e3[0]}
    ]
    assert _sku(graph, e3[0])["consumedUnits"] == before
    graph.assign(user["id"], [e3[0]])
    assert sim.store.user(user["id"])["assignedLicenses"][0]["disabledPlans"] == []


def test_mutually_exclusive_plans_and_a_gapless_swap(graph: Graph, sim: RunningSimulator) -> None:
    user = user_with(sim, lambda u: [a["skuId"] for a in u["licenseAssignmentStates"]] == [SPB])
    # Business Premium has Exchange Plan 1; Microsoft 365 E3 has Plan 2.
    conflict = graph.assign(user["id"], [SPE_E3])
    assert conflict.status_code == 400
    message = error_of(conflict)["message"]
    assert "mutually exclusive" in message and EXCHANGE_PLAN1 in message
    assert EXCHANGE_PLAN2 in message
    # Disabling the conflicting plan makes them stackable.
    ok = graph.assign(user["id"], [{"skuId": SPE_E3, "disabledPlans": [EXCHANGE_PLAN2]}])
    assert ok.status_code == 200
    graph.assign(user["id"], [], [SPE_E3])
    # The swap in one call: add E3, remove Business Premium.
    assert graph.assign(user["id"], [SPE_E3], [SPB]).status_code == 200
    history = sim.store.license_history(user["id"])
    assert all(skus for _, skus in history)  # never a moment without a license
    assert history[-1][1] == {SPE_E3}
    assert sim.store.applied_writes()[(user["id"], "assignLicense")] == 3


def test_group_inherited_license_cannot_be_removed_directly(
    graph: Graph, sim: RunningSimulator
) -> None:
    user = user_with(
        sim,
        lambda u: (
            any(s["assignedByGroup"] and s["skuId"] == SPE_E3 for s in u["licenseAssignmentStates"])
            and not any(
                s["assignedByGroup"] is None and s["skuId"] == SPE_E3
                for s in u["licenseAssignmentStates"]
            )
        ),
    )
    response = graph.assign(user["id"], [], [SPE_E3])
    assert response.status_code == 400
    assert "inherited from a group" in error_of(response)["message"]


def test_direct_plus_group_uses_one_seat(graph: Graph, sim: RunningSimulator) -> None:
    both = user_with(
        sim,
        lambda u: (
            sorted(
                s["assignedByGroup"] is None
                for s in u["licenseAssignmentStates"]
                if s["skuId"] == SPE_E3
            )
            == [False, True]
        ),
    )
    before = _sku(graph, SPE_E3)["consumedUnits"]
    assert graph.assign(both["id"], [], [SPE_E3]).status_code == 200
    assert SPE_E3 in sim.store.user_licenses(both["id"])  # still inherited
    assert _sku(graph, SPE_E3)["consumedUnits"] == before


@pytest.fixture
def options() -> SimulatorOptions:
    return SimulatorOptions(seed=7, time_scale=20, group_processing_delay=10)  # 0.5 s


def _group(graph: Graph, name: str) -> dict:
    return graph.get("/groups", params={"$filter": f"displayName eq '{name}'"}).json()["value"][0]


def _wait_processed(graph: Graph, sim: RunningSimulator, group_id: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        graph.get("/organization")  # any request runs due processing
        if not [g for g in sim.store.groups() if g["id"] == group_id and g["pending"]]:
            return
        time.sleep(0.1)
    raise AssertionError("group never processed")


def test_group_licensing_is_asynchronous(graph: Graph, sim: RunningSimulator) -> None:
    group = _group(graph, "Licensing - Microsoft 365 E3")
    user = _unlicensed(sim)[0]
    ref = {"@odata.id": f"{sim.graph_url}/directoryObjects/{user['id']}"}
    assert graph.post(f"/groups/{group['id']}/members/$ref", json=ref).status_code == 204
    again = graph.post(f"/groups/{group['id']}/members/$ref", json=ref)
    assert again.status_code == 400 and "already exist" in error_of(again)["message"]
    ghost = {"@odata.id": f"{sim.graph_url}/directoryObjects/00000000-0000-0000-0000-000000000001"}
    assert graph.post(f"/groups/{group['id']}/members/$ref", json=ghost).status_code == 404
    assert sim.store.user_licenses(user["id"]) == set()  # not yet processed
    _wait_processed(graph, sim, group["id"])
    [state] = sim.store.user(user["id"])["licenseAssignmentStates"]
    assert state["assignedByGroup"] == group["id"] and state["state"] == "Active"
    removed = graph.request("DELETE", f"/groups/{group['id']}/members/{user['id']}/$ref")
    assert removed.status_code == 204
    assert (
        graph.request("DELETE", f"/groups/{group['id']}/members/{user['id']}/$ref").status_code
        == 404
    )
    _wait_processed(graph, sim, group["id"])
    assert sim.store.user_licenses(user["id"]) == set()


def test_count_violation_and_reprocess(graph: Graph, sim: RunningSimulator) -> None:
    group = _group(graph, "Licensing - Power BI Pro")
    errors = graph.get(f"/groups/{group['id']}/membersWithLicenseErrors").json()["value"]
    assert len(errors) == 2
    stuck = sim.store.user(errors[0]["id"])
    [state] = [s for s in stuck["licenseAssignmentStates"] if s["skuId"] == POWER_BI_PRO]
    assert (state["state"], state["error"]) == ("Error", "CountViolation")
    assert _free(graph, POWER_BI_PRO) == 0
    # Free a seat (take an active member out of the group), then reprocess the stuck user.
    active = next(
        m
        for m in [g for g in sim.store.groups() if g["id"] == group["id"]][0]["members"]
        if m not in {e["id"] for e in errors} and POWER_BI_PRO in sim.store.user_licenses(m)
    )
    graph.request("DELETE", f"/groups/{group['id']}/members/{active}/$ref")
    _wait_processed(graph, sim, group["id"])
    assert POWER_BI_PRO not in sim.store.user_licenses(stuck["id"])  # stays in error
    assert graph.post(f"/users/{stuck['id']}/reprocessLicenseAssignment").status_code == 200
    assert POWER_BI_PRO in sim.store.user_licenses(stuck["id"])
    remaining = graph.get(f"/groups/{group['id']}/membersWithLicenseErrors").json()["value"]
    assert len(remaining) == 1


def test_group_assign_license_is_accepted_then_applied(graph: Graph, sim: RunningSimulator) -> None:
    group = _group(graph, "Sales Team")
    response = graph.post(
        f"/groups/{group['id']}/assignLicense",
        json={"addLicenses": [{"skuId": FLOW_FREE, "disabledPlans": []}], "removeLicenses": []},
    )
    assert response.status_code == 202
    assert response.json()["assignedLicenses"][0]["skuId"] == FLOW_FREE
    _wait_processed(graph, sim, group["id"])
    members = [g for g in sim.store.groups() if g["id"] == group["id"]][0]["members"]
    assert members and all(FLOW_FREE in sim.store.user_licenses(m) for m in members)
    bad = graph.post(f"/groups/{group['id']}/assignLicense", json={"addLicenses": []})
    assert bad.status_code == 400
