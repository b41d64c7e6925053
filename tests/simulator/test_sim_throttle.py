"""Throttling: costs, the sliding-window quotas, and the achieved write rate over HTTPS."""

from __future__ import annotations

import threading
import time

import pytest
from simhelpers import Graph

from batch.simulator import RunningSimulator, SimulatorOptions
from batch.simulator.throttle import Throttle, request_cost, tenant_size_quota


@pytest.mark.parametrize(
    "method, segments, params, cost",
    [
        ("GET", ["users"], {}, 2),
        ("GET", ["users"], {"$select": "id"}, 1),
        ("GET", ["users"], {"$select": "id", "$top": "5"}, 1),
        ("GET", ["users"], {"$expand": "manager"}, 3),
        ("GET", ["subscribedSkus"], {}, 3),
        ("GET", ["groups", "g", "members"], {}, 3),
        ("GET", ["users", "u", "licenseDetails"], {}, 2),
        ("GET", ["organization"], {}, 1),
        ("POST", ["users", "u", "assignLicense"], {}, 1),
    ],
)
def test_request_costs(method: str, segments: list[str], params: dict, cost: int) -> None:
    assert request_cost(method, segments, params) == cost


def test_tenant_size() -> None:
    assert [tenant_size_quota(n) for n in (10, 49, 50, 500, 501)] == [3500, 3500, 5000, 5000, 8000]


def test_write_quota_window_is_exact() -> None:
    throttle = Throttle(SimulatorOptions(write_quota=3, write_window=10), "t", 100)
    admitted = [throttle.admit("app", "POST", 1, now=t).admitted for t in (0, 1, 2, 3)]
    assert admitted == [True, True, True, False]
    verdict = throttle.admit("app", "POST", 1, now=5.5)
    assert not verdict.admitted and verdict.retry_after == pytest.approx(4.5)
    assert verdict.information == "WriteLimitExceeded"
    assert throttle.admit("app", "POST", 1, now=10.0).admitted  # the first write aged out
    assert throttle.admit("other-app", "POST", 1, now=10.0).admitted  # per app
    assert throttle.admit("app", "GET", 1, now=10.0).admitted  # reads unaffected


def test_time_scale_shrinks_windows_not_limits() -> None:
    throttle = Throttle(SimulatorOptions(write_quota=2, write_window=10, time_scale=10), "t", 10)
    assert throttle.admit("a", "PATCH", 1, now=0).admitted
    assert throttle.admit("a", "PATCH", 1, now=0.1).admitted
    verdict = throttle.admit("a", "PATCH", 1, now=0.2)
    assert verdict.retry_after == pytest.approx(0.8)
    assert throttle.admit("a", "PATCH", 1, now=1.0).admitted


def test_resource_units_and_tenant_writes() -> None:
    throttle = Throttle(SimulatorOptions(resource_unit_quota=10, tenant_write_quota=2), "t", 10)
    assert all(throttle.admit("a", "GET", 3, now=0).admitted for _ in range(3))
    ru = throttle.admit("a", "GET", 3, now=1)
    assert not ru.admitted and ru.information == "ResourceUnitLimitExceeded"
    assert ru.limit_percentage >= 1.0
    assert throttle.admit("b", "POST", 1, now=1).admitted
    assert throttle.admit("c", "POST", 1, now=1).admitted
    tenant = throttle.admit("d", "POST", 1, now=1)
    assert not tenant.admitted and tenant.scope.startswith("Tenant/Write/")


@pytest.fixture
def options() -> SimulatorOptions:
    return SimulatorOptions(seed=7, write_quota=20, write_window=1.0)


def test_achieved_write_rate_never_exceeds_the_quota(graph: Graph, sim: RunningSimulator) -> None:
    users = [r[0] for r in sim.store.connection().execute("SELECT id FROM users LIMIT 4")]
    statuses: list[int] = []
    retry_afters: list[float] = []
    lock = threading.Lock()

    def hammer(user: str) -> None:
        local = Graph(sim)
        deadline = time.monotonic() + 2.5
        n = 0
        while time.monotonic() < deadline and n < 400:
            n += 1
            response = local.request("PATCH", f"/users/{user}", json={"jobTitle": f"t{n}"})
            with lock:
                statuses.append(response.status_code)
                if response.status_code == 429:
                    retry_afters.append(float(response.headers["Retry-After"]))
                    assert response.json()["error"]["innerError"]["status"] == "429"

    threads = [threading.Thread(target=hammer, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    times = sorted(sim.counters.write_times)
    assert statuses.count(204) == len(times) > 20
    assert 429 in statuses and all(0 < r <= 1.0 for r in retry_afters)
    # No window of one second holds more than 20 applied writes.
    start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0:
            start += 1
        assert end - start + 1 <= 20
    assert sim.counters["throttled"] == statuses.count(429)


def test_throttled_client_recovers_after_retry_after(graph: Graph, sim: RunningSimulator) -> None:
    sim.options.write_quota = 1
    user = sim.store.user("o'brien@contoso.example")["id"]
    assert graph.request("PATCH", f"/users/{user}", json={"jobTitle": "a"}).status_code == 204
    throttled = graph.request("PATCH", f"/users/{user}", json={"jobTitle": "b"})
    assert throttled.status_code == 429
    time.sleep(float(throttled.headers["Retry-After"]) + 0.05)
    assert graph.request("PATCH", f"/users/{user}", json={"jobTitle": "b"}).status_code == 204
