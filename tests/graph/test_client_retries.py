"""Single (non-``$batch``) requests: the same retry rule as ``$batch`` items.

Reads are retried on 429/500/502/503/504 after Retry-After or backoff, bounded; writes only
on 429/503 (a 500/504 on a write is an unknown outcome and is never resent blindly).
"""

from __future__ import annotations

import email.utils
import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from batch.config import Settings
from batch.errors import GraphStatusError
from batch.graph.client import GraphClient, RetryPolicy
from batch.simulator import SimulatorOptions
from tests.graph.conftest import sim_client

BASE = "https://graph.test/v1.0"


class Scripted(BaseAdapter):
    """Answers each request with the next (status, headers) of a script, then 200."""

    def __init__(self, script: list[tuple[int, dict[str, str]]]) -> None:
        super().__init__()
        self.script = list(script)
        self.sent: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append(str(request.method))
        status, headers = self.script.pop(0) if self.script else (200, {})
        response = requests.Response()
        response.status_code = status
        response.headers.update({"request-id": f"r{len(self.sent)}", **headers})
        body = {"value": []} if status < 400 else {"error": {"code": "x", "message": "boom"}}
        response._content = json.dumps(body).encode()
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        pass


def scripted_client(
    tmp_path: Path, script: list[tuple[int, dict[str, str]]], **retry: Any
) -> tuple[GraphClient, Scripted, list[float]]:
    adapter = Scripted(script)
    session = requests.Session()
    session.mount("https://graph.test", adapter)
    waits: list[float] = []
    client = GraphClient(
        Settings(home=tmp_path, tenant_id="t", client_id="c", graph_url=BASE),
        session=session,
        token_provider=lambda: "token",
        retry=RetryPolicy(**{"backoff_base": 0.01, "backoff_cap": 0.05, **retry}),
        sleep=waits.append,
    )
    return client, adapter, waits


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_get_is_retried_on_throttling_and_server_errors(tmp_path: Path, status: int) -> None:
    client, adapter, waits = scripted_client(tmp_path, [(status, {}), (status, {})])
    assert client.get("/subscribedSkus") == {"value": []}
    assert adapter.sent == ["GET"] * 3
    assert len(waits) == 2 and client.stats.retries == 2
    assert client.stats.server_errors == (2 if status >= 500 else 0)
    assert client.stats.throttled == (2 if status == 429 else 0)


def test_retry_after_fractional_and_http_date(tmp_path: Path) -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    client, _, waits = scripted_client(
        tmp_path, [(503, {"Retry-After": "0.25"}), (429, {"Retry-After": later})]
    )
    client.get("/users")
    assert waits[0] == pytest.approx(0.25)
    assert 25 < waits[1] <= 30


def test_retries_are_bounded(tmp_path: Path) -> None:
    client, adapter, waits = scripted_client(tmp_path, [(500, {})] * 10, max_retries=3)
    with pytest.raises(GraphStatusError) as info:
        client.get("/users")
    assert info.value.status == 500
    assert len(adapter.sent) == 4 and len(waits) == 3
    assert all(w <= 0.05 for w in waits)  # never longer than the backoff cap


def test_a_retry_after_beyond_the_cap_is_not_waited_for(tmp_path: Path) -> None:
    client, adapter, waits = scripted_client(
        tmp_path, [(429, {"Retry-After": "900"})], max_retry_after=60
    )
    with pytest.raises(GraphStatusError):
        client.get("/users")
    assert adapter.sent == ["GET"] and waits == []


@pytest.mark.parametrize("status", [500, 502, 504])
def test_write_with_unknown_outcome_is_not_resent(tmp_path: Path, status: int) -> None:
    client, adapter, _ = scripted_client(tmp_path, [(status, {})])
    with pytest.raises(GraphStatusError):
        client.post("/users/u1/assignLicense", {"addLicenses": [], "removeLicenses": []})
    assert adapter.sent == ["POST"]


@pytest.mark.parametrize("status", [429, 503])
def test_write_refused_whole_is_resent(tmp_path: Path, status: int) -> None:
    client, adapter, _ = scripted_client(tmp_path, [(status, {"Retry-After": "0.01"})])
    client.post("/users/u1/assignLicense", {"addLicenses": [], "removeLicenses": []})
    assert adapter.sent == ["POST", "POST"]


def _single_fault(sim: Any, rate: float) -> str:
    """Turn on 500s for standalone requests: ``fault_single_500`` when the simulator has it,
    else ``fault_item_500`` (which hits standalone requests too)."""
    name = (
        "fault_single_500"
        if "fault_single_500" in SimulatorOptions.__dataclass_fields__
        else "fault_item_500"
    )
    setattr(sim.options, name, rate)
    return name


def _faults_500(sim: Any) -> int:
    return sim.counters[
        "single_fault_500"
        if "fault_single_500" in SimulatorOptions.__dataclass_fields__
        else "fault_500"
    ]


def test_server_errors_on_reads_and_pages_do_not_end_the_read(live: Any, tmp_path: Path) -> None:
    client = sim_client(live, tmp_path)
    expected = len(list(client.get_all("/users", {"$select": "id", "$top": 999})))
    before = _faults_500(live)
    _single_fault(live, 0.3)
    for _ in range(10):
        assert client.get("/subscribedSkus")["value"]
    paged = list(client.get_all("/users", {"$select": "id", "$top": 20}))
    assert len({u["id"] for u in paged}) == expected
    injected = _faults_500(live) - before
    assert injected > 3
    assert client.stats.server_errors >= injected
    assert client.stats.retries >= injected
