"""JSON batching rules (graph-reference.md sections 1 and 11), one test per rule."""

from __future__ import annotations

from typing import Any

import pytest
from conformhelpers import FLOW_FREE, OBRIEN, get_item, user_id
from simhelpers import Graph, error_of

from batch.simulator import RunningSimulator, SimulatorOptions

JSON_BATCHING = "microsoftgraph/microsoft-graph-docs-contrib:concepts/json-batching.md"
MIXED = "Batch should be either fully sequential or fully parallel"


def _assign(i: int | str, user: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": str(i),
        "method": "POST",
        "url": f"/users/{user}/assignLicense",
        "headers": {"Content-Type": "application/json"},
        "body": {"addLicenses": [{"skuId": FLOW_FREE, "disabledPlans": []}], "removeLicenses": []},
        **extra,
    }


def _statuses(response: Any) -> dict[str, int]:
    assert response.status_code == 200, response.text
    return {r["id"]: r["status"] for r in response.json()["responses"]}


def _refused(graph: Graph, items: list[dict[str, Any]], message: str) -> None:
    response = graph.batch(items)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == "BadRequest"
    assert message in error["message"]


def test_at_most_20_requests(graph: Graph) -> None:
    """Docs: "JSON batch requests are currently limited to 20 individual requests." Source:
    concepts/json-batching.md (microsoft-graph-docs-contrib)."""
    assert _statuses(graph.batch([get_item(i) for i in range(20)])) == {
        str(i): 200 for i in range(20)
    }
    _refused(graph, [get_item(i) for i in range(21)], "Limit of 20 requests exceeded")


def test_ids_are_unique_ignoring_case(graph: Graph) -> None:
    """id: "Not case-sensitive. Must be unique in the batch, otherwise, the batch request
    fails with a 400 error code." Source: concepts/json-batching.md."""
    _refused(graph, [get_item("a"), get_item("A")], "duplicate id")


def test_id_method_and_url_are_required(graph: Graph) -> None:
    """id, method and url are "Required". Source: concepts/json-batching.md."""
    for key in ("id", "method", "url"):
        item = get_item(1)
        del item[key]
        _refused(graph, [item], f"no valid '{key}'")


def test_malformed_batch_is_400_parseable_batch_is_200(graph: Graph, sim: RunningSimulator) -> None:
    """Docs: "If the batch request itself is malformed, the status code is 400. If the batch
    request is parseable, the status code is 200." Source: concepts/json-batching.md."""
    response = graph.post("/$batch", json={"nothing": 1})
    assert response.status_code == 400
    assert error_of(response)["code"] == "BadRequest"
    mixed = graph.batch([get_item(1), get_item(2, "/users/nobody@contoso.example")])
    assert _statuses(mixed) == {"1": 200, "2": 404}


def test_urls_must_be_relative(graph: Graph, sim: RunningSimulator) -> None:
    """Docs: "Always specify relative URIs in batch requests" (no absolute URL, no version
    segment; a missing leading slash is fine). Source: concepts/known-issues.md; example
    ``users?$select=...`` in concepts/json-batching.md."""
    response = graph.batch(
        [
            get_item(1, f"{sim.graph_url}/organization"),
            get_item(2, "/v1.0/organization"),
            get_item(3, "organization"),
        ]
    )
    assert _statuses(response) == {"1": 400, "2": 400, "3": 200}


def test_body_needs_content_type(graph: Graph, sim: RunningSimulator) -> None:
    """Docs: "When the body is supplied, a Content-Type header must be included." Source:
    concepts/json-batching.md."""
    item = _assign(1, user_id(sim, OBRIEN))
    del item["headers"]
    assert _statuses(graph.batch([item])) == {"1": 400}
    assert FLOW_FREE not in sim.store.user_licenses(OBRIEN)


def test_no_nested_batches(graph: Graph) -> None:
    """Docs: "JSON batch requests must not contain any nested batch requests." Source:
    concepts/known-issues.md."""
    assert _statuses(graph.batch([get_item(1, "/$batch")])) == {"1": 400}


def test_failed_dependency_gives_424(graph: Graph, sim: RunningSimulator) -> None:
    """Docs: "If an individual request fails, any request that depends on that request fails
    with status code 424 (Failed Dependency)." Source: concepts/json-batching.md."""
    user = user_id(sim, OBRIEN)
    response = graph.batch(
        [
            get_item(1, "/users/nobody@contoso.example"),
            _assign(2, user, dependsOn=["1"]),
            get_item(3, dependsOn=["2"]),
        ]
    )
    assert _statuses(response) == {"1": 404, "2": 424, "3": 424}
    assert FLOW_FREE not in sim.store.user_licenses(user)


def test_single_dependency_only(graph: Graph) -> None:
    """Docs: "requests can only depend on a single other request". Source:
    concepts/known-issues.md."""
    _refused(
        graph,
        [get_item(1), get_item(2), get_item(3, dependsOn=["1", "2"])],
        "more than one",
    )


def test_dependency_must_be_an_earlier_request(graph: Graph) -> None:
    """dependsOn "references the id of a different individual request"; this simulator
    also asks for an earlier one (a choice: items run in order). Source:
    concepts/json-batching.md."""
    _refused(graph, [get_item(1, dependsOn=["2"]), get_item(2)], "not an earlier request")
    _refused(graph, [get_item(1), get_item(2, dependsOn=["9"])], "not an earlier request")


def test_parallel_pattern_is_accepted(graph: Graph) -> None:
    """Parallel: no request states a dependency (an empty list states none). Source:
    concepts/known-issues.md (three dependsOn patterns)."""
    response = graph.batch([get_item(1), get_item(2, dependsOn=[]), get_item(3)])
    assert _statuses(response) == {"1": 200, "2": 200, "3": 200}


@pytest.mark.parametrize(
    "depends",
    [[None, "1"], [None, "1", "2"], [None, "1", "2", "3", "4"]],
    ids=["pair", "chain-of-3", "chain-of-5"],
)
def test_serial_pattern_is_accepted(graph: Graph, depends: list[str | None]) -> None:
    """Serial: "all individual requests depend on the previous individual request".
    Source: concepts/known-issues.md."""
    items = [get_item(i + 1, **({"dependsOn": [d]} if d else {})) for i, d in enumerate(depends)]
    assert set(_statuses(graph.batch(items)).values()) == {200}


def test_same_pattern_is_accepted(graph: Graph) -> None:
    """Same: "all individual requests that state a dependency ... state the same
    dependency"; requests without one may stand anywhere. Source: concepts/known-issues.md."""
    items = [
        get_item(1),
        get_item(2, dependsOn=["1"]),
        get_item(3),
        get_item(4, dependsOn=["1"]),
        get_item(5),
    ]
    assert set(_statuses(graph.batch(items)).values()) == {200}


@pytest.mark.parametrize(
    "depends",
    [
        [None, "1", None, "3", None],  # two chains side by side
        [None, "1", "2", None],  # a chain, then a parallel request
        [None, None, "2", "3"],  # parallel first, then a chain
        [None, "1", "1", "2"],  # serial and same mixed
    ],
    ids=["two-pairs", "chain-then-parallel", "parallel-then-chain", "fan-then-chain"],
)
def test_mixed_dependency_patterns_are_refused(graph: Graph, depends: list[str | None]) -> None:
    """A batch outside the three patterns is refused whole: 400 "Batch should be either
    fully sequential or fully parallel". Sources: graph-reference.md section 11;
    https://github.com/microsoftgraph/microsoft-graph-docs-contrib/issues/2339; Microsoft
    Q&A 1532547."""
    items = [get_item(i + 1, **({"dependsOn": [d]} if d else {})) for i, d in enumerate(depends)]
    response = graph.batch(items)
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["message"]) == ("BadRequest", MIXED)


def test_mixed_batch_applies_nothing(graph: Graph, sim: RunningSimulator) -> None:
    """A refused batch runs none of its requests. Source: graph-reference.md section 11."""
    user = user_id(sim, OBRIEN)
    items = [
        get_item(1),
        _assign(2, user, dependsOn=["1"]),
        get_item(3),
        get_item(4, dependsOn=["3"]),
    ]
    assert graph.batch(items).status_code == 400
    assert FLOW_FREE not in sim.store.user_licenses(user)


def test_responses_correlate_by_id_in_any_order(graph: Graph) -> None:
    """Docs: "Individual responses might appear in a different order than the requests. The id
    property can be used to correlate". Source: concepts/json-batching.md."""
    ids = [r["id"] for r in graph.batch([get_item(i) for i in range(20)]).json()["responses"]]
    assert sorted(ids, key=int) == [str(i) for i in range(20)]
    assert ids != [str(i) for i in range(20)]


@pytest.fixture
def options() -> SimulatorOptions:
    return SimulatorOptions(seed=5, write_quota=3, write_window=60)


def test_items_are_throttled_individually_with_retry_after(
    graph: Graph, sim: RunningSimulator
) -> None:
    """Docs: "Requests in a batch are evaluated individually against the applicable throttling
    limits and if any request exceeds the limits, it fails with a status of 429"; the batch
    itself answers 200; each 429 carries its own Retry-After. Sources:
    concepts/json-batching.md; concepts/throttling.md (ms.date 01/14/2025)."""
    users = [
        r[0]
        for r in sim.store.connection().execute(
            "SELECT id FROM users WHERE usage_location IS NOT NULL LIMIT 5"
        )
    ]
    response = graph.batch([_assign(i, u) for i, u in enumerate(users)] + [get_item(99)])
    assert response.status_code == 200
    items = {r["id"]: r for r in response.json()["responses"]}
    throttled = [r for r in items.values() if r["status"] == 429]
    assert len(throttled) == 2 and items["99"]["status"] == 200
    for item in throttled:
        assert float(item["headers"]["Retry-After"]) > 0
        assert item["body"]["error"]["code"] == "TooManyRequests"
