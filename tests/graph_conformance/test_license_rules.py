"""assignLicense and group-licensing rules (graph-reference.md sections 3, 6 and 10)."""

from __future__ import annotations

import pytest
from conformhelpers import COMPANY_SKU, ENTERPRISEPACK, FLOW_FREE, OBRIEN, SPE_E5, poll, user_id
from simhelpers import Graph, error_of

from batch.simulator import RunningSimulator, SimulatorOptions

NADIA = "nadia.nolocation@contoso.example"


@pytest.fixture
def options() -> SimulatorOptions:
    return SimulatorOptions(seed=5, time_scale=20)


def _unlicensed(sim: RunningSimulator, n: int = 1) -> list[str]:
    rows = sim.store.connection().execute(
        "SELECT id FROM users WHERE usage_location IS NOT NULL AND id NOT IN "
        "(SELECT user_id FROM licenses) ORDER BY seq LIMIT ?",
        (n,),
    )
    return [r[0] for r in rows]


@pytest.mark.parametrize("missing", ["addLicenses", "removeLicenses"])
def test_both_keys_are_required(graph: Graph, sim: RunningSimulator, missing: str) -> None:
    """400 Request_BadRequest "One or more parameters of the operation 'assignLicense' are
    missing from the request payload. The missing parameters are: removeLicenses." Sources:
    https://github.com/microsoftgraph/msgraph-sdk-powershell/issues/3201, /issues/3231."""
    body = {"addLicenses": [], "removeLicenses": []}
    del body[missing]
    response = graph.post(f"/users/{_unlicensed(sim)[0]}/assignLicense", json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "Request_BadRequest"
    assert error["message"] == (
        "One or more parameters of the operation 'assignLicense' are missing from the request "
        f"payload. The missing parameters are: {missing}."
    )


def test_success_is_200_with_the_user(graph: Graph, sim: RunningSimulator) -> None:
    """Docs: "If successful, this method returns 200 OK response code and user object". Source:
    api-reference/v1.0/api/user-assignlicense.md."""
    user = _unlicensed(sim)[0]
    response = graph.assign(user, [FLOW_FREE])
    assert response.status_code == 200 and response.json()["id"] == user
    assert FLOW_FREE in sim.store.user_licenses(user)


def test_invalid_usage_location(graph: Graph, sim: RunningSimulator) -> None:
    """400 Request_BadRequest "License assignment cannot be done for user with invalid usage
    location." Source: https://github.com/KelvinTegelaar/CIPP/issues/783."""
    response = graph.assign(user_id(sim, NADIA), [FLOW_FREE])
    assert response.status_code == 400
    assert error_of(response)["message"] == (
        "License assignment cannot be done for user with invalid usage location."
    )


def test_usage_location_replication_lag(graph: Graph, sim: RunningSimulator) -> None:
    """Just after PATCH usageLocation, assignLicense may still answer "invalid usage
    location"; a retry later succeeds. Source: graph-reference.md section 10 (Microsoft Q&A
    5984903)."""
    sim.options.usage_location_lag = 10  # 0.5 s at time_scale 20
    user = user_id(sim, NADIA)
    patched = graph.request("PATCH", f"/users/{user}", json={"usageLocation": "FR"})
    assert patched.status_code == 204
    assert graph.assign(user, [FLOW_FREE]).status_code == 400
    poll(lambda: graph.assign(user, [FLOW_FREE]).status_code == 200, timeout=10)


def test_no_seats_left(graph: Graph, sim: RunningSimulator) -> None:
    """Request_BadRequest, message contains "does not have any available licenses". Source:
    graph-reference.md section 3 (public scripts; Partner Center wording)."""
    users = _unlicensed(sim, 6)
    answers = [graph.assign(u, [SPE_E5]) for u in users]
    refused = [a for a in answers if a.status_code == 400]
    assert refused and all(
        "does not have any available licenses" in error_of(a)["message"] for a in refused
    )


def test_unknown_sku(graph: Graph, sim: RunningSimulator) -> None:
    """Docs: "License <id> does not correspond to a valid company License."
    Source: pnp/cli-microsoft365
    fixture user-license-add.spec.ts (graph-reference.md section 3)."""
    unknown = "0118a350-71fc-4ec3-8f0c-6a1cb8867561"
    response = graph.assign(_unlicensed(sim)[0], [unknown])
    assert error_of(response)["message"] == (
        f"License {unknown} does not correspond to a valid company License."
    )


def test_company_sku_cannot_be_assigned_to_a_user(graph: Graph, sim: RunningSimulator) -> None:
    """Docs: "License ______ cannot be assigned to a user." (appliesTo Company). Source:
    https://github.com/microsoftgraph/microsoft-graph-docs-contrib/issues/5644."""
    response = graph.assign(_unlicensed(sim)[0], [COMPANY_SKU])
    assert response.status_code == 400
    assert "cannot be assigned to a user" in error_of(response)["message"]


def test_unknown_user_is_404(graph: Graph) -> None:
    """404 Request_ResourceNotFound. Source: graph-reference.md section 3."""
    response = graph.assign("nobody@contoso.example", [FLOW_FREE])
    assert response.status_code == 404
    assert error_of(response)["code"] == "Request_ResourceNotFound"


def test_inherited_license_cannot_be_removed_directly(graph: Graph, sim: RunningSimulator) -> None:
    """Docs: "When a user inherits a license from a group, you can't directly remove or modify
    that license". Source:
    MicrosoftDocs/entra-docs:docs/identity/users/licensing-group-advanced.md."""
    row = (
        sim.store.connection()
        .execute(
            "SELECT user_id, sku_id FROM licenses WHERE source != '' AND user_id NOT IN "
            "(SELECT user_id FROM licenses WHERE source = '') LIMIT 1"
        )
        .fetchone()
    )
    response = graph.assign(row[0], [], [row[1]])
    assert response.status_code == 400
    assert "inherited" in error_of(response)["message"]
    assert row[1] in sim.store.user_licenses(row[0])


def test_add_member_rules(graph: Graph, sim: RunningSimulator) -> None:
    """POST /groups/{id}/members/$ref: 204; 400 "One or more added object references already
    exist for the following modified properties: 'members'." when already a member; 404 for
    an unknown object. DELETE .../$ref: 204. Source: api-reference/v1.0/api/group-post-members.md,
    group-delete-members.md."""
    group = next(g for g in sim.store.groups() if g["displayName"] == "Sales Team")
    outsider = next(
        r[0]
        for r in sim.store.connection().execute("SELECT id FROM users ORDER BY seq")
        if r[0] not in group["members"]
    )
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{outsider}"}
    assert graph.post(f"/groups/{group['id']}/members/$ref", json=ref).status_code == 204
    again = graph.post(f"/groups/{group['id']}/members/$ref", json=ref)
    assert again.status_code == 400
    assert error_of(again)["message"] == (
        "One or more added object references already exist for the following modified "
        "properties: 'members'."
    )
    ghost = {"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/nobody"}
    assert graph.post(f"/groups/{group['id']}/members/$ref", json=ghost).status_code == 404
    removed = graph.request("DELETE", f"/groups/{group['id']}/members/{outsider}/$ref")
    assert removed.status_code == 204


def test_group_licensing_is_asynchronous(graph: Graph, sim: RunningSimulator) -> None:
    """POST /groups/{id}/assignLicense returns 202 with a Location header; licenses reach
    members later ("Typically, license modifications are effective within minutes").
    Sources: api-reference/v1.0/api/group-assignlicense.md;
    MicrosoftDocs/entra-docs:docs/fundamentals/concept-group-based-licensing.md."""
    group = next(g for g in sim.store.groups() if g["displayName"] == "Sales Team")
    body = {"addLicenses": [{"skuId": FLOW_FREE, "disabledPlans": []}], "removeLicenses": []}
    response = graph.post(f"/groups/{group['id']}/assignLicense", json=body)
    assert response.status_code == 202 and response.headers["Location"]
    member = next(m for m in group["members"] if sim.store.user(m)["usageLocation"])
    assert FLOW_FREE not in sim.store.user_licenses(member)

    def inherited() -> bool:
        graph.get("/organization")  # any request lets due processing run
        return FLOW_FREE in sim.store.user_licenses(member)

    poll(inherited, timeout=10)
    states = graph.get(f"/users/{member}?$select=licenseAssignmentStates").json()
    assert any(
        s["skuId"] == FLOW_FREE and s["assignedByGroup"] == group["id"]
        for s in states["licenseAssignmentStates"]
    )


def test_license_assignment_states_error_none(graph: Graph, sim: RunningSimulator) -> None:
    """licenseAssignmentStates: assignedByGroup null when direct, state Active, error "None"
    when there is none (the service's value; the docs say null). Source:
    api-reference/v1.0/resources/licenseassignmentstate.md; render.py docstring."""
    body = graph.get(f"/users/{user_id(sim, OBRIEN)}?$select=licenseAssignmentStates").json()
    direct = [s for s in body["licenseAssignmentStates"] if s["skuId"] == ENTERPRISEPACK]
    assert direct and direct[0]["assignedByGroup"] is None
    assert direct[0]["state"] == "Active" and direct[0]["error"] == "None"
