"""Faults on demand: rates, repeatability, lost acknowledgements, resets, whole-batch faults."""

from __future__ import annotations

import pytest
import requests
from simhelpers import FLOW_FREE, Graph, error_of

from batch.simulator import RunningSimulator, SimulatorOptions, start_simulator


def _statuses(graph: Graph, n: int) -> list[int]:
    response = graph.batch(
        [{"id": str(i), "method": "GET", "url": "/organization"} for i in range(20)]
    )
    return [r["status"] for r in sorted(response.json()["responses"], key=lambda r: int(r["id"]))]


def test_item_faults_fire_at_their_rate_and_repeat_with_the_seed(state_dir) -> None:
    runs = []
    for _ in range(2):
        options = SimulatorOptions(seed=11, fault_item_429=0.2, fault_item_503=0.1)
        with start_simulator(state_dir, options) as sim:
            graph = Graph(sim)
            statuses = [s for _ in range(15) for s in _statuses(graph, 20)]
            runs.append(statuses)
            assert sim.counters["fault_429"] == statuses.count(429)
    first = runs[0]
    assert runs[0] == runs[1]  # same seed, same sequence
    assert 0.13 < first.count(429) / len(first) < 0.27  # 300 draws around 0.2
    # 503 is drawn only when 429 was not: 0.8 * 0.1 = 0.08
    assert 0.03 < first.count(503) / len(first) < 0.14
    assert set(first) <= {200, 429, 503}


def test_injected_429_and_503_carry_retry_after(sim: RunningSimulator, graph: Graph) -> None:
    sim.options.fault_item_429 = 1.0
    response = graph.get("/organization")
    assert response.status_code == 429
    assert float(response.headers["Retry-After"]) == sim.options.fault_retry_after
    assert error_of(response)["code"] == "TooManyRequests"
    sim.options.fault_item_429 = 0.0
    sim.options.fault_item_503 = 1.0
    assert graph.get("/organization").headers["Retry-After"]


def test_writes_only_faults_spare_reads(sim: RunningSimulator, graph: Graph) -> None:
    sim.options.fault_item_500 = 1.0
    sim.options.faults_writes_only = True
    assert graph.get("/organization").status_code == 200
    user = sim.store.user("o'brien@contoso.example")["id"]
    assert graph.assign(user, [FLOW_FREE]).status_code == 500
    assert FLOW_FREE not in sim.store.user_licenses(user)


def test_lost_ack_applies_then_answers_504(sim: RunningSimulator, graph: Graph) -> None:
    sim.options.fault_lost_ack = 1.0
    user = sim.store.user("o'brien@contoso.example")["id"]
    response = graph.assign(user, [FLOW_FREE])
    assert response.status_code == 504
    assert FLOW_FREE in sim.store.user_licenses(user)
    assert sim.store.applied_writes()[(user, "assignLicense")] == 1
    assert graph.get("/organization").status_code == 200  # reads are never "lost"


@pytest.mark.parametrize("when, applied", [("before", False), ("after", True)])
def test_connection_reset(sim: RunningSimulator, graph: Graph, when: str, applied: bool) -> None:
    setattr(sim.options, f"fault_reset_{when}", 1.0)
    user = sim.store.user("o'brien@contoso.example")["id"]
    with pytest.raises(requests.ConnectionError):
        graph.assign(user, [FLOW_FREE])
    setattr(sim.options, f"fault_reset_{when}", 0.0)
    assert (FLOW_FREE in sim.store.user_licenses(user)) is applied
    assert sim.counters[f"reset_{when}"] >= 1
    assert Graph(sim).get("/organization").status_code == 200  # the server is fine


@pytest.mark.parametrize("status", [429, 503, 504])
def test_whole_batch_faults(sim: RunningSimulator, graph: Graph, status: int) -> None:
    setattr(sim.options, f"fault_batch_{status}", 1.0)
    user = sim.store.user("o'brien@contoso.example")["id"]
    response = graph.batch(
        [
            {
                "id": "1",
                "method": "POST",
                "url": f"/users/{user}/assignLicense",
                "headers": {"Content-Type": "application/json"},
                "body": {"addLicenses": [{"skuId": FLOW_FREE}], "removeLicenses": []},
            }
        ]
    )
    assert response.status_code == status
    assert ("Retry-After" in response.headers) is (status != 504)
    assert FLOW_FREE not in sim.store.user_licenses(user)


def test_latency_options_do_not_break_answers(sim: RunningSimulator, graph: Graph) -> None:
    sim.options.latency_ms = 20
    sim.options.item_latency_ms = 5
    response = graph.batch(
        [{"id": str(i), "method": "GET", "url": "/organization"} for i in range(3)]
    )
    assert [r["status"] for r in response.json()["responses"]] == [200, 200, 200]
