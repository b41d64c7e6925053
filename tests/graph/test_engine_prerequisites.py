"""Prerequisites against the fake Graph: every batch has a shape Graph accepts, and each
answer of a prerequisite sent alone (429, 504, 401/403, a permanent 4xx) is handled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batch.errors import PermissionDenied
from batch.graph.engine import BatchEngine, EngineSettings, Outcome, assign_license
from batch.graph.pacing import PacerSettings
from tests.graph.fakegraph import MIXED_BATCH, FakeGraph, batch_shape_ok, fake_client

SKU = "05e9a617-0261-4cee-bb44-138d3ef5d965"
LOCATION = "/users/{}?$select=usageLocation"


def _item(item_id: int, depends_on: int | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": str(item_id), "method": "GET", "url": "/me"}
    if depends_on is not None:
        item["dependsOn"] = [str(depends_on)]
    return item


@pytest.mark.parametrize(
    ("shape", "ok"),
    [
        ([None, None, None], True),  # parallel
        ([None, 1, 2, 3], True),  # serial
        ([None, 1, 1, None], True),  # all on the same one
        ([None, 1], True),  # a pair alone: serial and same
        ([None, 1, None, 3], False),  # two pairs side by side
        ([None, 1, 2, None], False),  # a chain beside a plain item
        ([None, 1, 1, 2], False),  # two different dependencies
        ([2, None], False),  # on a later item
    ],
)
def test_batch_shape_ok(shape: list[int | None], ok: bool) -> None:
    items = [_item(i + 1, dep) for i, dep in enumerate(shape)]
    assert batch_shape_ok(items) is ok


def test_fake_graph_refuses_a_mixed_batch_whole(tmp_path: Path) -> None:
    fake = FakeGraph()
    client = fake_client(fake, tmp_path)
    reply = client.send_batch([_item(1), _item(2, 1), _item(3), _item(4, 3)])
    assert reply.status == 400 and MIXED_BATCH in str(reply.body)


def _settings(**kw: Any) -> EngineSettings:
    values: dict[str, Any] = dict(
        verify_delay=0.0,
        backoff_base=0.01,
        backoff_cap=0.05,
        lag_delay=0.01,
        breaker_min_attempts=1000,
        pacer=PacerSettings(initial_rate=10_000),
    )
    values.update(kw)
    return EngineSettings(**values)


def _tenant(users: int, without_location: int) -> FakeGraph:
    fake = FakeGraph()
    for i in range(users):
        fake.add_user(f"u{i}", f"user{i}@contoso.example")
        if i < without_location:
            fake.users[f"u{i}"]["usageLocation"] = None
    return fake


def _ops(users: int, without_location: int) -> list[Any]:
    return [
        assign_license(
            f"row {i + 2}",
            f"u{i}",
            add={SKU: []},
            usage_location="FR" if i < without_location else None,
        )
        for i in range(users)
    ]


def _once(answer: Any) -> Any:
    """A script answer given the first time only."""
    seen: list[bool] = []

    def give() -> Any:
        if seen:
            return None
        seen.append(True)
        return answer

    return give


def _about(url: str, user: str) -> bool:
    """Whether a request URL (``/users/{id}...``) is about ``user``."""
    return url.split("?")[0].split("/")[2] == user


def _events(fake: FakeGraph) -> list[tuple[str, str]]:
    """Every Graph operation the fake received, in order: (method, url)."""
    events: list[tuple[str, str]] = []
    batches = iter(fake.batches)
    for _, method, url, _ in fake.log:
        if url == "$batch":
            events.extend((i["method"], i["url"]) for i in next(batches))
        else:
            events.append((method, url.split("/v1.0", 1)[1]))
    return events


def test_mixed_sheet_sends_only_legal_batches_and_handles_every_prerequisite_answer(
    tmp_path: Path,
) -> None:
    users, without = 40, 12  # 30 % need a usage location first
    fake = _tenant(users, without)
    bad = (400, {}, {"error": {"code": "Request_BadRequest", "message": "Invalid usageLocation"}})
    slow = (429, {"Retry-After": "0.05"}, {"error": {"code": "TooManyRequests", "message": "x"}})
    gone = (504, {}, {"error": {"code": "GatewayTimeout", "message": "late"}})
    scripted = {
        ("PATCH", "/users/u1"): _once(slow),  # throttled, then sent again
        ("PATCH", "/users/u2"): lambda: bad,  # fails for good: its operation fails unsent
        ("PATCH", "/users/u3"): _once("lost"),  # applied, answered 504: read back, not resent
        ("PATCH", "/users/u4"): _once(gone),  # not applied, answered 504: read back, resent
        ("POST", "/users/u20/assignLicense"): _once(slow),  # a plain operation throttled too
    }
    fake.script = lambda item: scripted.get((item["method"], item["url"]), lambda: None)()
    engine = BatchEngine(fake_client(fake, tmp_path), _settings(batch_size=8))
    engine.run(_ops(users, without), total=users)

    assert fake.batches and all(batch_shape_ok(batch) for batch in fake.batches)
    assert not any("dependsOn" in item for batch in fake.batches for item in batch)
    results = engine.results
    assert len(results) == users

    failed = results["row 4"]  # u2
    assert failed.outcome is Outcome.FAILED and failed.status == 424 and failed.attempts == 0
    assert failed.code == "Request_BadRequest" and "Invalid usageLocation" in str(failed.message)
    assert failed.prerequisite is not None and failed.prerequisite.outcome is Outcome.FAILED
    assert failed.prerequisite.status == 400
    assert {k for k, r in results.items() if not r.ok} == {"row 4"}
    assert all(r.attempts == 1 for k, r in results.items() if k not in ("row 4", "row 22"))
    assert results["row 22"].attempts == 2

    events = _events(fake)
    patches = {u: events.count(("PATCH", f"/users/{u}")) for u in ("u0", "u1", "u3", "u4")}
    assert patches == {"u0": 1, "u1": 2, "u3": 1, "u4": 2}
    assert ("POST", "/users/u2/assignLicense") not in events
    # A 504 on the prerequisite: read back before anything else is sent for that user.
    u3 = [e for e in events if _about(e[1], "u3")]
    assert u3 == [
        ("PATCH", "/users/u3"),
        ("GET", LOCATION.format("u3")),
        ("POST", "/users/u3/assignLicense"),
    ]
    u4 = [e for e in events if _about(e[1], "u4")]
    assert u4 == [
        ("PATCH", "/users/u4"),
        ("GET", LOCATION.format("u4")),
        ("PATCH", "/users/u4"),
        ("POST", "/users/u4/assignLicense"),
    ]
    assert results["row 5"].prerequisite is not None
    assert results["row 5"].prerequisite.outcome is Outcome.VERIFIED_APPLIED
    assert results["row 3"].prerequisite is not None
    assert results["row 3"].prerequisite.attempts == 2
    # Every operation goes in a later batch than its prerequisite's last send.
    for i in range(without):
        sent = [n for n, b in enumerate(fake.batches) for it in b if _about(it["url"], f"u{i}")]
        methods = [it["method"] for b in fake.batches for it in b if _about(it["url"], f"u{i}")]
        if i != 2:
            assert methods[-1] == "POST" and sent[-1] > sent[-2]
    assert fake.applied == {f"u{i}": 1 for i in range(users) if i != 2}
    assert fake.users["u2"]["usageLocation"] is None
    assert all(fake.users[f"u{i}"]["usageLocation"] == "FR" for i in range(without) if i != 2)


def test_replication_lag_after_the_prerequisite_is_retried(tmp_path: Path) -> None:
    fake = _tenant(3, 3)
    lagging = {"n": 0}

    def script(item: dict[str, Any]) -> Any:
        if item["method"] == "POST" and lagging["n"] < 3:
            lagging["n"] += 1
            message = "License assignment cannot be done for user with invalid usage location."
            return (400, {}, {"error": {"code": "Request_BadRequest", "message": message}})
        return None

    fake.script = script
    engine = BatchEngine(fake_client(fake, tmp_path), _settings())
    stats = engine.run(_ops(3, 3))
    assert all(r.outcome is Outcome.APPLIED for r in engine.results.values())
    assert stats.lag_retries == 3 and fake.applied == {"u0": 1, "u1": 1, "u2": 1}


def test_forbidden_prerequisite_stops_the_run(tmp_path: Path) -> None:
    fake = _tenant(2, 1)
    denied = (403, {}, {"error": {"code": "Authorization_RequestDenied", "message": "no"}})
    fake.script = lambda item: denied if item["method"] == "PATCH" else None
    engine = BatchEngine(fake_client(fake, tmp_path), _settings())
    with pytest.raises(PermissionDenied):
        engine.run(_ops(2, 1))
    result = engine.results["row 2"]
    assert result.outcome is Outcome.FAILED and result.attempts == 0
    assert not any(
        item["url"] == "/users/u0/assignLicense" for batch in fake.batches for item in batch
    )
