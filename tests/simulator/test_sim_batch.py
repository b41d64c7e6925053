"""$batch rules: size, ids, relative URLs, Content-Type, nesting, dependsOn, order, throttling."""

from __future__ import annotations

import pytest
from simhelpers import FLOW_FREE, Graph, error_of

from batch.simulator import RunningSimulator, SimulatorOptions, start_simulator


def _get(i: int | str, url: str = "/users?$top=1") -> dict:
    return {"id": str(i), "method": "GET", "url": url}


def _assign(i: int | str, user: str, sku: str = FLOW_FREE, **extra) -> dict:
    return {
        "id": str(i),
        "method": "POST",
        "url": f"/users/{user}/assignLicense",
        "headers": {"Content-Type": "application/json"},
        "body": {"addLicenses": [{"skuId": sku, "disabledPlans": []}], "removeLicenses": []},
        **extra,
    }


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"requests": [_get(i) for i in range(21)]}, "Limit of 20 requests exceeded"),
        ({"requests": [_get("a"), _get("A")]}, "duplicate id"),
        ({"requests": [_get(1), {**_get(2), "dependsOn": ["9"]}]}, "not an earlier request"),
        ({"requests": [_get(1), _get(2), {**_get(3), "dependsOn": ["1", "2"]}]}, "more than one"),
        ({"requests": [{"id": "1", "url": "/users"}]}, "no valid 'method'"),
        ({"requests": []}, "empty"),
        ({"nothing": 1}, "Unable to read JSON request payload"),
    ],
)
def test_malformed_batches_get_400(graph: Graph, payload: dict, message: str) -> None:
    response = graph.post("/$batch", json=payload)
    assert response.status_code == 400
    assert message in error_of(response)["message"]


def test_twenty_items_are_fine_and_answers_are_shuffled(graph: Graph) -> None:
    response = graph.batch([_get(i) for i in range(20)])
    assert response.status_code == 200
    ids = [r["id"] for r in response.json()["responses"]]
    assert sorted(ids, key=int) == [str(i) for i in range(20)]
    assert ids != [str(i) for i in range(20)]  # "might appear in a different order"


def test_shuffle_is_seeded(state_dir, tmp_path) -> None:
    orders = []
    for _ in range(2):
        with start_simulator(state_dir, SimulatorOptions(seed=3)) as sim:
            graph = Graph(sim)
            orders.append(
                [r["id"] for r in graph.batch([_get(i) for i in range(10)]).json()["responses"]]
            )
    assert orders[0] == orders[1]


def test_item_level_errors(graph: Graph, sim: RunningSimulator) -> None:
    user = sim.store.user("o'brien@contoso.example")["id"]
    no_type = _assign("3", user)
    del no_type["headers"]
    response = graph.batch(
        [
            _get(1, f"{sim.graph_url}/users"),  # absolute URL
            _get(2, "/$batch"),  # nested batch
            no_type,  # body without Content-Type
            _get(4, "users?$top=1"),  # no leading slash is fine
            _get(5, "/v1.0/users"),  # version inside the batch URL
            {"id": "6", "method": "GET", "url": "/users/nobody@contoso.example"},
        ]
    )
    assert response.status_code == 200
    status = {r["id"]: r["status"] for r in response.json()["responses"]}
    assert status == {"1": 400, "2": 400, "3": 400, "4": 200, "5": 400, "6": 404}
    assert sim.store.user_licenses(user) == {"6fd2c87f-b296-42f0-b197-1e91e994b900"}
    items = {r["id"]: r for r in response.json()["responses"]}
    assert items["6"]["body"]["error"]["code"] == "Request_ResourceNotFound"


def test_depends_on_failure_gives_424(graph: Graph, sim: RunningSimulator) -> None:
    user = sim.store.user("o'brien@contoso.example")["id"]
    response = graph.batch(
        [
            _get(1, "/users/nobody@contoso.example"),
            {**_assign(2, user), "dependsOn": ["1"]},
            {**_get(3), "dependsOn": ["2"]},
        ]
    )  # serial: a chain with an independent item after it would be refused whole
    status = {r["id"]: r["status"] for r in response.json()["responses"]}
    assert status == {"1": 404, "2": 424, "3": 424}
    assert FLOW_FREE not in sim.store.user_licenses(user)
    chained = graph.batch(
        [
            _assign(1, user),
            {**_get(2, f"/users/{user}?$select=assignedLicenses"), "dependsOn": ["1"]},
        ]
    )
    items = {r["id"]: r for r in chained.json()["responses"]}
    assert items["1"]["status"] == 200
    assert FLOW_FREE in [a["skuId"] for a in items["2"]["body"]["assignedLicenses"]]


@pytest.fixture
def options() -> SimulatorOptions:
    return SimulatorOptions(seed=7, write_quota=5, write_window=30)


def test_items_are_throttled_individually(graph: Graph, sim: RunningSimulator) -> None:
    users = [
        r[0]
        for r in sim.store.connection().execute(
            "SELECT id FROM users WHERE usage_location IS NOT NULL LIMIT 8"
        )
    ]
    response = graph.batch([_assign(i, u) for i, u in enumerate(users)] + [_get(99)])
    assert response.status_code == 200
    items = {r["id"]: r for r in response.json()["responses"]}
    throttled = [r for r in items.values() if r["status"] == 429]
    assert len(throttled) == 3 and items["99"]["status"] == 200  # reads still pass
    for item in throttled:
        assert float(item["headers"]["Retry-After"]) > 0
        assert item["headers"]["x-ms-throttle-information"] == "WriteLimitExceeded"
        assert item["headers"]["x-ms-throttle-scope"].startswith("Tenant_Application/Write/")
        assert item["body"]["error"]["code"] == "TooManyRequests"
    applied = [u for u in users if FLOW_FREE in sim.store.user_licenses(u)]
    assert len(applied) == 5
    assert sim.counters["throttled"] == 3
