"""Directory query rules: page sizes, $top, advanced queries, filter limits, paging, errors.

Sources: graph-reference.md sections 4, 5, 8, 9 and 11.
"""

from __future__ import annotations

from typing import Any

import pytest
from conformhelpers import OBRIEN, user_id
from simhelpers import Graph, error_of

from batch.simulator import RunningSimulator

EVENTUAL = {"ConsistencyLevel": "eventual"}
TOO_MANY = (
    "Too many child clauses specified in search filter expression containing 'OR' "
    "operators: {n}. Max allowed: 15."
)
TOO_LONG = "The value of a string in a filter expression is limited to 120 characters."


def _users(graph: Graph, headers: dict[str, str] | None = None, **params: str) -> Any:
    return graph.get("/users", params=params, headers=headers or {})


def test_default_page_is_100(graph: Graph) -> None:
    """Docs: "The default and maximum page sizes are 100 and 999 user objects". Source:
    https://learn.microsoft.com/en-us/graph/api/user-list?view=graph-rest-1.0"""
    body = _users(graph).json()
    assert len(body["value"]) == 100 and "@odata.nextLink" in body


def test_top_is_at_most_999(graph: Graph) -> None:
    """Maximum page size 999; $top outside 1..999 is a 400. Source: user-list (URL above)."""
    assert len(_users(graph, **{"$top": "999", "$select": "id"}).json()["value"]) > 100
    for top in ("1000", "0"):
        response = _users(graph, **{"$top": top})
        assert response.status_code == 400
        assert "Must be between 1 and 999" in error_of(response)["message"]


def test_skip_is_not_supported(graph: Graph) -> None:
    """Docs: "$skip isn't supported." Source: user-list (URL above)."""
    response = _users(graph, **{"$skip": "5"})
    assert response.status_code == 400
    assert error_of(response)["code"] == "Request_UnsupportedQuery"


def test_license_properties_only_on_select(graph: Graph) -> None:
    """assignedLicenses, licenseAssignmentStates, usageLocation: "Returned only on $select";
    default properties are the documented eleven. Source: api-reference/v1.0/resources/user.md;
    user-list (URL above)."""
    user = _users(graph, **{"$top": "1"}).json()["value"][0]
    assert set(user) == {
        "businessPhones", "displayName", "givenName", "id", "jobTitle", "mail", "mobilePhone",
        "officeLocation", "preferredLanguage", "surname", "userPrincipalName",
    }  # fmt: skip
    chosen = _users(graph, **{"$top": "1", "$select": "id,assignedLicenses"}).json()["value"][0]
    assert set(chosen) == {"id", "assignedLicenses"}


def test_next_link_is_absolute_and_count_only_on_first_page(
    graph: Graph, sim: RunningSimulator
) -> None:
    """Use "the entire URL in the @odata.nextLink"; headers such as ConsistencyLevel are not
    carried over; "@odata.count property will be present only in the first page". Source:
    concepts/paging.md."""
    first = _users(graph, EVENTUAL, **{"$top": "50", "$count": "true", "$select": "id"}).json()
    assert first["@odata.count"] == 300
    link = first["@odata.nextLink"]
    assert link.startswith(f"{sim.graph_url}/users?")
    second = graph.get(link, headers=EVENTUAL).json()
    assert "@odata.count" not in second and len(second["value"]) == 50


def test_forged_skip_token_is_refused(graph: Graph) -> None:
    """Docs: "Do not try to extract the $skiptoken": tokens are opaque; a made-up one is a 400
    (a choice of message). Source: concepts/paging.md."""
    response = _users(graph, **{"$skiptoken": "forged"})
    assert response.status_code == 400


def test_advanced_queries_need_eventual_and_count(graph: Graph) -> None:
    """ne, not, endsWith and $count in a filter need "ConsistencyLevel header to eventual
    and ... the $count query parameter"; without them: Request_UnsupportedQuery. Source:
    concepts/aad-advanced-queries.md."""
    for text in (
        "accountEnabled ne true",
        "not(accountEnabled eq true)",
        "endswith(userPrincipalName,'@contoso.example')",
        "assignedLicenses/$count eq 0",
    ):
        plain = _users(graph, **{"$filter": text})
        assert plain.status_code == 400, text
        assert error_of(plain)["code"] == "Request_UnsupportedQuery"
        assert _users(graph, EVENTUAL, **{"$filter": text}).status_code == 400, text
        ok = _users(graph, EVENTUAL, **{"$filter": text, "$count": "true"})
        assert ok.status_code == 200, text


def test_count_true_without_header_is_ignored(graph: Graph) -> None:
    """Docs: "$count=true alone silently ignores". Source: concepts/aad-advanced-queries.md."""
    body = _users(graph, **{"$count": "true", "$top": "5"}).json()
    assert "@odata.count" not in body


def test_count_segment_needs_eventual(graph: Graph) -> None:
    """Request_BadRequest "$count is not currently supported." without the header. Source:
    concepts/aad-advanced-queries.md."""
    response = graph.get("/users/$count")
    assert response.status_code == 400
    assert error_of(response)["message"] == "$count is not currently supported."
    assert graph.get("/users/$count", headers=EVENTUAL).text == "300"


def test_search_needs_eventual(graph: Graph) -> None:
    """Docs: "Request with $search query parameter only works through MSGraph with a special
    request header: 'ConsistencyLevel: eventual'". Source: concepts/aad-advanced-queries.md."""
    response = _users(graph, **{"$search": '"displayName:Zoë"'})
    assert response.status_code == 400
    assert error_of(response)["message"] == (
        "Request with $search query parameter only works through MSGraph with a special "
        "request header: 'ConsistencyLevel: eventual'"
    )
    assert _users(graph, EVENTUAL, **{"$search": '"displayName:Zoë"'}).status_code == 200


def test_any_sku_filter_works_without_advanced_headers(graph: Graph) -> None:
    """assignedLicenses/any(x:x/skuId eq GUID) with an unquoted GUID; whether it needs
    advanced-query parameters is not stated, this simulator accepts it without (a choice).
    Source: graph-reference.md section 4 ("Filter by SKU")."""
    text = "assignedLicenses/any(x:x/skuId eq 05e9a617-0261-4cee-bb44-138d3ef5d965)"
    assert _users(graph, **{"$filter": text}).status_code == 200


@pytest.mark.parametrize("n", [15, 16, 40])
def test_in_is_limited_to_15_values(graph: Graph, n: int) -> None:
    """in: "limited to 15 expressions"; past it 400 "Too many child clauses specified in
    search filter expression containing 'OR' operators: N. Max allowed: 15." Source:
    graph-reference.md section 11 (concepts/known-issues.md)."""
    values = ",".join(f"'user{i}@contoso.example'" for i in range(n))
    response = _users(graph, **{"$filter": f"userPrincipalName in ({values})"})
    if n <= 15:
        assert response.status_code == 200
        return
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "Request_UnsupportedQuery"
    assert error["message"] == TOO_MANY.format(n=n)


def test_or_chain_is_limited_to_15_clauses(graph: Graph) -> None:
    """Choice: an or chain gets the same limit and answer as in (the message names 'OR').
    Source: graph-reference.md section 11."""
    chain = " or ".join(f"userPrincipalName eq 'u{i}@contoso.example'" for i in range(16))
    response = _users(graph, **{"$filter": chain})
    assert response.status_code == 400
    assert error_of(response)["message"] == TOO_MANY.format(n=16)
    ok = " or ".join(f"userPrincipalName eq 'u{i}@contoso.example'" for i in range(15))
    assert _users(graph, **{"$filter": ok}).status_code == 200


def test_eq_string_is_limited_to_120_characters(graph: Graph) -> None:
    """eq on a string: "the value is limited to 120 characters". The answer is a choice:
    400 Request_UnsupportedQuery "The value of a string in a filter expression is limited
    to 120 characters." Source: graph-reference.md section 11 (concepts/known-issues.md)."""
    ok = "x" * 120
    assert _users(graph, **{"$filter": f"displayName eq '{ok}'"}).status_code == 200
    for text in (f"displayName eq '{ok}y'", f"userPrincipalName in ('a', '{ok}y')"):
        response = _users(graph, **{"$filter": text})
        assert response.status_code == 400
        error = error_of(response)
        assert (error["code"], error["message"]) == ("Request_UnsupportedQuery", TOO_LONG)


def test_subscribed_skus_refuse_filter(graph: Graph) -> None:
    """subscribedSkus "supports only the $select OData query parameter ... It does not
    support $filter." Source: api-reference/v1.0/api/subscribedsku-list.md."""
    assert graph.get("/subscribedSkus?$select=skuId").status_code == 200
    response = graph.get("/subscribedSkus?$filter=skuPartNumber eq 'SPE_E3'")
    assert response.status_code == 400


def test_hash_in_a_upn_must_be_encoded(graph: Graph) -> None:
    """Docs: "$filter on UPN containing # must encode # as %23"; in a path too. Source:
    concepts/known-issues.md."""
    upn = "adele.vance_fabrikam.example%23EXT%23@contoso.example"
    assert graph.get(f"/users/{upn}").status_code == 200


def test_unknown_user_is_404_request_resource_not_found(graph: Graph) -> None:
    """404 Request_ResourceNotFound "Resource '<id>' does not exist or one of its queried
    reference-property objects are not present." Source: graph-reference.md section 3."""
    response = graph.get("/users/nobody@contoso.example")
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "Request_ResourceNotFound"
    assert error["message"].startswith("Resource 'nobody@contoso.example' does not exist")


def test_error_shape(graph: Graph, sim: RunningSimulator) -> None:
    """Errors are {"error": {"code", "message", "innerError": {"date", "request-id",
    "client-request-id"}}}. Source: concepts/errors.md; concepts/json-batching.md."""
    response = graph.get(f"/users/{user_id(sim, OBRIEN)}?$select=nosuchproperty")
    assert response.status_code == 400
    inner = error_of(response)["innerError"]
    assert {"date", "request-id", "client-request-id"} <= set(inner)


def test_missing_permission_is_403(sim: RunningSimulator) -> None:
    """403 Authorization_RequestDenied "Insufficient privileges to complete the operation."
    Source: concepts/json-batching.md example response."""
    from simhelpers import acquire_token

    client_id, secret = sim.add_app(["Organization.Read.All"])
    reader = Graph(sim, acquire_token(sim, client_id, secret)["access_token"])
    response = reader.get("/users")
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "Authorization_RequestDenied"
    assert error["message"] == "Insufficient privileges to complete the operation."
