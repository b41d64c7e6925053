"""The batch engine against an in-process fake Graph: packing, matching, retries, verify."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from batch.errors import GuardStopped
from batch.graph.engine import BatchEngine, EngineSettings, Outcome, assign_license
from batch.graph.pacing import PacerSettings
from tests.graph.fakegraph import FakeGraph, fake_client

SKU = "05e9a617-0261-4cee-bb44-138d3ef5d965"


def _settings(**kw: object) -> EngineSettings:
    base = dict(
        verify_delay=0.0,
        backoff_base=0.01,
        backoff_cap=0.05,
        lag_delay=0.01,
        pacer=PacerSettings(initial_rate=10_000),
    )
    base.update(kw)
    return EngineSettings(**base)  # type: ignore[arg-type]


def _tenant(n: int) -> FakeGraph:
    fake = FakeGraph()
    for i in range(n):
        fake.add_user(f"u{i}", f"user{i}@contoso.example")
    return fake


def _ops(n: int, **kw: object) -> list:
    return [assign_license(f"row {i + 2}", f"u{i}", add={SKU: []}, **kw) for i in range(n)]  # type: ignore[arg-type]


def test_packs_at_most_20_and_matches_reversed_answers(tmp_path: Path) -> None:
    fake = _tenant(45)
    engine = BatchEngine(fake_client(fake, tmp_path), _settings())
    stats = engine.run(_ops(45))
    sizes = [len(ids) for _, _, what, ids in fake.log if what == "$batch"]
    assert sorted(sizes) == [5, 20, 20]
    assert all(r.outcome is Outcome.APPLIED for r in engine.results.values())
    assert len(engine.results) == 45 and stats.finished == 45
    assert all(fake.applied[f"u{i}"] == 1 for i in range(45))


def test_prerequisite_goes_first_in_an_earlier_batch_without_depends_on(tmp_path: Path) -> None:
    fake = _tenant(3)
    for user in fake.users.values():
        user["usageLocation"] = None
    engine = BatchEngine(fake_client(fake, tmp_path), _settings())
    engine.run(_ops(3, usage_location="FR"))
    assert {u["usageLocation"] for u in fake.users.values()} == {"FR"}
    result = engine.results["row 2"]
    assert result.outcome is Outcome.APPLIED and result.attempts == 1
    assert result.prerequisite is not None and result.prerequisite.outcome is Outcome.APPLIED
    assert not any("dependsOn" in item for batch in fake.batches for item in batch)
    assert [[i["method"] for i in batch] for batch in fake.batches] == [["PATCH"] * 3, ["POST"] * 3]


def test_lost_ack_is_verified_not_resent(tmp_path: Path) -> None:
    fake = _tenant(4)
    fake.script = lambda item: "lost" if item["url"].startswith("/users/u1/assign") else None
    engine = BatchEngine(fake_client(fake, tmp_path), _settings())
    engine.run(_ops(4))
    assert engine.results["row 3"].outcome is Outcome.VERIFIED_APPLIED
    assert fake.applied["u1"] == 1


def test_missing_id_is_verified_then_resent_when_not_applied(tmp_path: Path) -> None:
    fake = _tenant(2)
    seen: list[str] = []

    def script(item: dict) -> object:
        if item["url"].startswith("/users/u0/assign") and not seen:
            seen.append("x")
            return (None, {}, None)  # dropped from the answer, not applied
        return None

    fake.script = script
    engine = BatchEngine(fake_client(fake, tmp_path), _settings())
    engine.run(_ops(2))
    result = engine.results["row 2"]
    assert result.outcome is Outcome.APPLIED and result.attempts == 2
    assert fake.applied["u0"] == 1


def test_permanent_error_is_a_result(tmp_path: Path) -> None:
    fake = _tenant(1)
    ops = _ops(1) + [assign_license("row 9", "nobody", add={SKU: []})]
    engine = BatchEngine(fake_client(fake, tmp_path), _settings(breaker_min_attempts=100))
    engine.run(ops)
    failed = engine.results["row 9"]
    assert failed.outcome is Outcome.FAILED and failed.status == 404
    assert failed.code == "Request_ResourceNotFound" and failed.attempts == 1


def test_breaker_stops_and_accounts_for_everything(tmp_path: Path) -> None:
    fake = _tenant(0)
    results = {}
    engine = BatchEngine(
        fake_client(fake, tmp_path),
        _settings(breaker_min_attempts=20, max_concurrency=1, initial_concurrency=1),
        on_result=lambda op, r: results.__setitem__(op.key, r),
    )
    with pytest.raises(GuardStopped) as info:
        engine.run(_ops(200), total=200)
    assert info.value.exit_code == 4
    assert len(results) == 200
    assert {r.outcome for r in results.values()} == {Outcome.FAILED, Outcome.NOT_ATTEMPTED}


def test_a_batch_left_without_an_answer_counts_once_for_the_breaker(tmp_path: Path) -> None:
    """A reset connection is one event on the wire: 20 items in it are not 20 failures."""
    fake = _tenant(60)
    resets = [requests.ConnectionError("reset by peer")] * 2

    def outer(items: list) -> object:
        with fake.lock:
            return resets.pop() if resets else None

    fake.outer = outer
    engine = BatchEngine(fake_client(fake, tmp_path), _settings(breaker_min_attempts=20))
    stats = engine.run(_ops(60), total=60)
    assert all(r.outcome.name.endswith("APPLIED") for r in engine.results.values())
    assert stats.failures == 2 and stats.attempts >= 60
    assert all(fake.applied[f"u{i}"] == 1 for i in range(60))


def test_a_token_renewal_is_not_counted_by_the_breaker(tmp_path: Path) -> None:
    """Every item of the first batch answered 401 (the token expired): renewed, not failures."""
    fake = _tenant(40)

    def script(item: dict) -> object:
        if len(fake.batches) == 1:
            error = {"error": {"code": "InvalidAuthenticationToken", "message": "expired"}}
            return (401, {}, error)
        return None

    fake.script = script
    engine = BatchEngine(
        fake_client(fake, tmp_path),
        _settings(breaker_min_attempts=20, max_concurrency=1, initial_concurrency=1),
    )
    stats = engine.run(_ops(40), total=40)
    assert all(r.outcome is Outcome.APPLIED for r in engine.results.values())
    assert stats.failures == 0 and stats.attempts == 40
    assert len(fake.batches) == 3  # the first one's 20 items were sent again


def test_retry_after_http_date_and_fractional_are_honoured(tmp_path: Path) -> None:
    import email.utils
    import time as _time

    fake = _tenant(2)
    when = email.utils.formatdate(_time.time() + 1.2, usegmt=True)
    first: dict[str, float] = {}

    def script(item: dict) -> object:
        url = item["url"]
        if "assignLicense" in url and url not in first:
            first[url] = _time.monotonic()
            ra = when if "u0" in url else "0.35"
            return (
                429,
                {"Retry-After": ra},
                {"error": {"code": "TooManyRequests", "message": "slow"}},
            )
        return None

    fake.script = script
    engine = BatchEngine(fake_client(fake, tmp_path), _settings())
    engine.run(_ops(2))
    assert all(r.outcome is Outcome.APPLIED and r.attempts == 2 for r in engine.results.values())
    answered = {url: t for t, url, status in fake.item_log if status == 429}
    resent = {url: t for t, url, status in fake.item_log if status == 200}
    # An HTTP date has one-second resolution: allow for the truncated fraction.
    assert resent["/users/u0/assignLicense"] - answered["/users/u0/assignLicense"] >= 0.2
    assert resent["/users/u1/assignLicense"] - answered["/users/u1/assignLicense"] >= 0.35


def test_retry_after_parsing() -> None:
    from batch.graph.answers import parse_retry_after

    assert parse_retry_after("2.128") == pytest.approx(2.128)
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_transient_prerequisite_failure_resends_it_alone(tmp_path: Path) -> None:
    fake = _tenant(1)
    fake.users["u0"]["usageLocation"] = None
    calls = {"patch": 0}

    def script(item: dict) -> object:
        if item["method"] == "PATCH":
            calls["patch"] += 1
            if calls["patch"] == 1:
                return (503, {}, {"error": {"code": "ServiceUnavailable", "message": "busy"}})
        return None

    fake.script = script
    engine = BatchEngine(fake_client(fake, tmp_path), _settings())
    engine.run(_ops(1, usage_location="SE"))
    result = engine.results["row 2"]
    assert result.outcome is Outcome.APPLIED and result.attempts == 1
    assert result.prerequisite is not None and result.prerequisite.attempts == 2
    assert calls["patch"] == 2 and fake.users["u0"]["usageLocation"] == "SE"
    assert fake.applied["u0"] == 1


def test_whole_batch_504_is_verified_before_resend(tmp_path: Path) -> None:
    fake = _tenant(3)
    state = {"n": 0}

    def outer(items: list) -> object:
        state["n"] += 1
        if state["n"] == 1:  # apply everything, then lose the answer
            for item in items:
                fake._apply(item["method"], item["url"], item.get("body"))
            return (504, {}, {"error": {"code": "GatewayTimeout", "message": "late"}})
        return None

    fake.outer = outer
    engine = BatchEngine(fake_client(fake, tmp_path), _settings())
    engine.run(_ops(3))
    assert {r.outcome for r in engine.results.values()} == {Outcome.VERIFIED_APPLIED}
    assert all(n == 1 for n in fake.applied.values())


def test_whole_batch_429_waits_and_resends(tmp_path: Path) -> None:
    fake = _tenant(3)
    state = {"n": 0}

    def outer(items: list) -> object:
        state["n"] += 1
        if state["n"] == 1:
            return (
                429,
                {"Retry-After": "0.2"},
                {"error": {"code": "TooManyRequests", "message": "x"}},
            )
        return None

    fake.outer = outer
    engine = BatchEngine(fake_client(fake, tmp_path), _settings())
    engine.run(_ops(3))
    assert {r.outcome for r in engine.results.values()} == {Outcome.APPLIED}
    assert engine.stats.throttled_requests == 1
    (t1, *_), (t2, *_) = fake.log[0], fake.log[1]
    assert t2 - t1 >= 0.2


def test_no_verify_hook_means_unknown_never_resent(tmp_path: Path) -> None:
    from batch.graph.engine import Operation

    fake = _tenant(1)
    fake.script = lambda item: "lost"
    op = Operation(
        "row 2",
        "POST",
        "/users/u0/assignLicense",
        body={"addLicenses": [{"skuId": SKU, "disabledPlans": []}], "removeLicenses": []},
    )
    engine = BatchEngine(fake_client(fake, tmp_path), _settings())
    engine.run([op])
    assert engine.results["row 2"].outcome is Outcome.UNKNOWN
    assert fake.applied["u0"] == 1
