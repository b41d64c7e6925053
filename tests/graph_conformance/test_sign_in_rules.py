"""signInActivity rules: permission, page size, filters, absent and missing values.

Sources: api-reference/v1.0/resources/user.md; user-list
(https://learn.microsoft.com/en-us/graph/api/user-list?view=graph-rest-1.0);
https://github.com/microsoftgraph/msgraph-sdk-powershell/issues/1898 (graph-reference.md
sections 0, 4 and 11).
"""

from __future__ import annotations

from conformhelpers import OBRIEN
from simhelpers import Graph, acquire_token, error_of

from batch.simulator import RunningSimulator

EVENTUAL = {"ConsistencyLevel": "eventual"}
SELECT = "id,userPrincipalName,signInActivity"


def test_sign_in_activity_needs_audit_log_permission(sim: RunningSimulator) -> None:
    """Docs: "Details for this property require ... the AuditLog.Read.All permission." Source:
    api-reference/v1.0/resources/user.md."""
    client_id, secret = sim.add_app(["User.Read.All"])
    reader = Graph(sim, acquire_token(sim, client_id, secret)["access_token"])
    assert reader.get("/users?$select=id").status_code == 200
    response = reader.get(f"/users?$select={SELECT}")
    assert response.status_code == 403
    assert error_of(response)["code"] == "Authorization_RequestDenied"


def test_page_is_at_most_500_with_sign_in_activity(graph: Graph) -> None:
    """Docs: "When signInActivity is selected or filtered on, the maximum page size is 500."
    Source: user-list (current; older docs said 120, section 0)."""
    assert len(graph.get(f"/users?$select={SELECT}&$top=500").json()["value"]) == 300
    response = graph.get(f"/users?$select={SELECT}&$top=501")
    assert response.status_code == 400
    assert "Must be between 1 and 500" in error_of(response)["message"]
    filtered = graph.get(
        "/users?$filter=signInActivity/lastSignInDateTime le 2030-01-01T00:00:00Z&$top=501"
    )
    assert filtered.status_code == 400


def test_never_signed_in_users_carry_no_sign_in_activity(graph: Graph) -> None:
    """Docs: "This property isn't returned for a user who never signed in". Source:
    api-reference/v1.0/resources/user.md."""
    room = graph.get("/users/room-boardroom@contoso.example?$select=id,signInActivity").json()
    assert "signInActivity" not in room
    listed = graph.get(f"/users?$select={SELECT}&$top=500").json()["value"]
    known = [u for u in listed if "signInActivity" in u]
    assert known and set(known[0]["signInActivity"]) == {
        "lastSignInDateTime",
        "lastNonInteractiveSignInDateTime",
        "lastSuccessfulSignInDateTime",
    }


def test_missing_sign_in_data_is_null(graph: Graph, sim: RunningSimulator) -> None:
    """A user whose sign-in data is missing answers "signInActivity": null, distinct from
    one who never signed in (absent) or signed in only non-interactively (an object with a
    null lastSignInDateTime). Source: graph-reference.md section 11 ("treat a missing value
    as unknown"); msgraph-sdk-powershell issue 1898."""
    sim.store.set_sign_in(OBRIEN, None)
    missing = graph.get(f"/users/{OBRIEN}?$select=id,signInActivity").json()
    assert "signInActivity" in missing and missing["signInActivity"] is None
    sim.store.set_sign_in(OBRIEN, {"lastNonInteractiveSignInDateTime": "2026-01-02T03:04:05Z"})
    background = graph.get(f"/users/{OBRIEN}?$select=id,signInActivity").json()
    assert background["signInActivity"]["lastSignInDateTime"] is None
    assert background["signInActivity"]["lastNonInteractiveSignInDateTime"] == (
        "2026-01-02T03:04:05Z"
    )
    sim.store.set_sign_in(OBRIEN, {})
    never = graph.get(f"/users/{OBRIEN}?$select=id,signInActivity").json()
    assert "signInActivity" not in never


def test_count_with_eventual_empties_sign_in_after_120(graph: Graph) -> None:
    """Choice after msgraph-sdk-powershell issue 1898 ("signinActivities for some users are
    EMPTY when im trying to get >=120 users ... it happens when the request includes
    ConsistencyLevel: eventual + $count=true"): every user after the 120th of such a page
    answers signInActivity null; a plain $select with $top <= 500 is complete. Source:
    graph-reference.md section 11."""
    plain = graph.get(f"/users?$select={SELECT}&$top=300").json()["value"]
    counted = graph.get(f"/users?$select={SELECT}&$top=300&$count=true", headers=EVENTUAL).json()[
        "value"
    ]
    assert [u["id"] for u in plain] == [u["id"] for u in counted]
    assert counted[:120] == plain[:120]
    assert all(u["signInActivity"] is None for u in counted[120:])
    assert any(u.get("signInActivity") for u in plain[120:])


def test_sign_in_filter_operators(graph: Graph) -> None:
    """signInActivity "Supports $filter (eq, ne, not, ge, le)": gt, lt and in are refused
    with Request_UnsupportedQuery. Source: api-reference/v1.0/resources/user.md."""
    prop = "signInActivity/lastSignInDateTime"
    ok = graph.get(f"/users?$filter={prop} le 2030-01-01T00:00:00Z&$select=id")
    assert ok.status_code == 200 and ok.json()["value"]
    for op in ("gt", "lt"):
        response = graph.get(f"/users?$filter={prop} {op} 2020-01-01T00:00:00Z")
        assert response.status_code == 400, op
        assert error_of(response)["code"] == "Request_UnsupportedQuery"
    refused = graph.get(f"/users?$filter={prop} in (2020-01-01T00:00:00Z)")
    assert refused.status_code == 400


def test_sign_in_filter_not_with_other_properties(graph: Graph) -> None:
    """signInActivity filters work "but not with any other filterable properties". Source:
    api-reference/v1.0/resources/user.md."""
    text = "signInActivity/lastSignInDateTime le 2030-01-01T00:00:00Z and accountEnabled eq true"
    response = graph.get("/users", params={"$filter": text})
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "Request_UnsupportedQuery"
    assert "signInActivity/lastSignInDateTime" in error["message"]
