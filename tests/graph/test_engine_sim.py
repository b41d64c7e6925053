"""The batch engine against the simulated tenant: faults, throttling, verification, guards."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from batch.errors import GuardStopped, PermissionDenied
from batch.graph.answers import BatchReply, parse_retry_after
from batch.graph.client import GraphClient, RetryPolicy
from batch.graph.engine import BatchEngine, Operation, Outcome, assign_license
from batch.graph.pacing import PacerSettings
from tests.graph.conftest import quick_engine, sim_client, sim_settings
from tests.graph.fakegraph import batch_shape_ok
from tests.graph.tenant_helpers import add_ops, free_sku, remove_ops, users_without


class RecordingClient(GraphClient):
    """A real client that also notes when each item was sent and how it was answered."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()
        self.sends: list[tuple[float, list[str]]] = []  # (time, urls)
        self.throttles: list[tuple[float, str, float]] = []  # (answered, url, retry-after)

    def send_batch(self, items: list[dict[str, Any]], **kw: Any) -> BatchReply:
        started = time.monotonic()
        reply = super().send_batch(items, **kw)
        answered = time.monotonic()
        with self.lock:
            self.sends.append((started, [i["url"] for i in items]))
            by_id = {i["id"]: i for i in items}
            for item_id, answer in (reply.responses or {}).items():
                headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
                if answer.get("status") == 429:
                    delay = parse_retry_after(headers.get("retry-after"))
                    self.throttles.append((answered, by_id[item_id]["url"], delay or 0.0))
            if reply.status == 429:
                delay = parse_retry_after(reply.headers.get("Retry-After")) or 0.0
                self.throttles.extend((answered, i["url"], delay) for i in items)
        return reply


def _run(client: GraphClient, ops: list[Operation], **kw: Any) -> BatchEngine:
    engine = BatchEngine(client, quick_engine(**kw))
    engine.run(ops, total=len(ops))
    return engine


def _undo(client: GraphClient, users: list[dict[str, Any]], sku: str) -> None:
    BatchEngine(client, quick_engine()).run(remove_ops(users, sku))


def _writes(sim: Any, users: list[dict[str, Any]]) -> list[int]:
    """How many assignLicense writes the simulator applied per user so far."""
    counts = sim.store.applied_writes()
    return [counts.get((u["id"], "assignLicense"), 0) for u in users]


def _delta(sim: Any, users: list[dict[str, Any]], before: list[int]) -> list[int]:
    return [now - then for now, then in zip(_writes(sim, users), before, strict=True)]


def test_out_of_order_answers_matched_by_id(live: Any, tmp_path: Path) -> None:
    client = sim_client(live, tmp_path)
    sku = free_sku(client, 30)
    users = users_without(client, sku, 30)
    before = _writes(live, users)
    ops = add_ops(users, sku)
    ghost = "00000000-0000-0000-0000-0000000000%02d"
    ops[5:5] = [assign_license(f"ghost {i}", ghost % i, add={sku: []}) for i in range(6)]
    engine = _run(client, ops, breaker_min_attempts=1000)
    try:
        for op in ops:
            result = engine.results[op.key]
            if op.key.startswith("ghost"):
                assert result.outcome is Outcome.FAILED and result.status == 404
            else:
                assert result.outcome is Outcome.APPLIED
                assert result.body["id"] == op.url.split("/")[2]
        assert all(sku in live.store.user_licenses(u["id"]) for u in users)
        assert _delta(live, users, before) == [1] * 30
    finally:
        _undo(client, users, sku)


def test_throttled_items_wait_for_their_retry_after(live: Any, tmp_path: Path) -> None:
    live.options.throttling = True
    live.options.write_quota = 25
    live.options.write_window = 1.0
    live.options.time_scale = 1.0
    client = RecordingClient(sim_client(live, tmp_path).settings)
    sku = free_sku(client, 40)
    users = users_without(client, sku, 40)
    before = _writes(live, users)
    engine = _run(client, add_ops(users, sku))
    live.options.throttling = False
    try:
        assert client.throttles, "the quota should have throttled some items"
        assert all(r.outcome is Outcome.APPLIED for r in engine.results.values())
        for answered, url, delay in client.throttles:
            later = [t for t, urls in client.sends if url in urls and t > answered - 1e-6]
            assert later, f"{url} was never sent again"
            assert min(later) >= answered + delay - 0.002, "sent before Retry-After passed"
        assert any(0 < d < 1 and d != int(d) for _, _, d in client.throttles)  # fractional
        assert _delta(live, users, before) == [1] * 40
    finally:
        _undo(client, users, sku)


def test_a_long_quota_window_is_learnt_and_paced_not_burst_again(live: Any, tmp_path: Path) -> None:
    """Graph's write quota over a long window (15 writes per 150 s here, time-scaled to
    3 s): the first window's burst goes, then the first 429's Retry-After teaches the
    window, and the rest is paced under it instead of bursting into every new window.
    Counts only: few items answered 429, and each write applied once."""
    live.options.throttling = True
    live.options.write_quota = 15
    live.options.write_window = 150.0
    live.options.time_scale = 50.0
    # writes throttled by an earlier test still count in a window this long: let them leave
    time.sleep(live.options.scaled(live.options.write_window))
    client = sim_client(live, tmp_path)
    sku = free_sku(client, 50)
    users = users_without(client, sku, 50)
    before = _writes(live, users)
    # no start burst: it is sized against Graph's 3,000 writes per window, not 15
    engine = BatchEngine(client, quick_engine(pacer=PacerSettings(start_burst=0)))
    stats = engine.run(add_ops(users, sku), total=50)
    live.options.throttling = False
    try:
        assert all(r.outcome is Outcome.APPLIED for r in engine.results.values())
        assert _delta(live, users, before) == [1] * 50
        assert stats.quota_window is not None  # learnt as a long window
        assert stats.throttled_items <= 8, stats  # bursting into each new window: about 15
    finally:
        _undo(client, users, sku)


def test_lost_acknowledgements_and_resets_never_apply_twice(live: Any, tmp_path: Path) -> None:
    live.options.fault_lost_ack = 0.15
    live.options.fault_item_504 = 0.05
    live.options.fault_reset_after = 0.1
    live.options.fault_reset_before = 0.05
    live.options.faults_writes_only = True
    client = sim_client(live, tmp_path)
    sku = free_sku(client, 40)
    users = users_without(client, sku, 40)
    before = _writes(live, users)
    engine = _run(client, add_ops(users, sku), breaker_min_attempts=1000)
    for name in ("fault_lost_ack", "fault_item_504", "fault_reset_after", "fault_reset_before"):
        setattr(live.options, name, 0.0)
    try:
        outcomes = {r.outcome for r in engine.results.values()}
        assert outcomes <= {Outcome.APPLIED, Outcome.VERIFIED_APPLIED}
        assert Outcome.VERIFIED_APPLIED in outcomes
        assert engine.stats.verifications > 0
        assert _delta(live, users, before) == [1] * 40
        assert all(sku in live.store.user_licenses(u["id"]) for u in users)
    finally:
        _undo(client, users, sku)


def test_server_errors_are_retried_a_bounded_number_of_times(live: Any, tmp_path: Path) -> None:
    client = sim_client(live, tmp_path)
    sku = free_sku(client, 5)
    users = users_without(client, sku, 5)
    before = _writes(live, users)
    live.options.fault_item_500 = 1.0
    live.options.faults_writes_only = True
    engine = _run(client, add_ops(users, sku), breaker_ratio=1.0, max_error_retries=2)
    live.options.fault_item_500 = 0.0
    for result in engine.results.values():
        assert result.outcome is Outcome.EXHAUSTED
        assert result.status == 500 and result.attempts == 3
    assert _delta(live, users, before) == [0] * 5


def test_failed_prerequisite_fails_its_dependent(live: Any, tmp_path: Path) -> None:
    client = sim_client(live, tmp_path)
    sku = free_sku(client, 4)
    users = users_without(client, sku, 4)
    before = _writes(live, users)
    ops = [
        assign_license(f"row {i}", u["id"], add={sku: []}, usage_location=loc)
        for i, (u, loc) in enumerate(zip(users, ["GB", "FR", "GB", "DE"], strict=True))
    ]
    for i in (0, 2):  # a prerequisite that fails for good: its target does not exist
        assert ops[i].prerequisite is not None
        ops[i] = replace(
            ops[i],
            prerequisite=replace(
                ops[i].prerequisite, url="/users/00000000-0000-0000-0000-00000000dead"
            ),
        )
    engine = _run(client, ops, breaker_min_attempts=1000)
    try:
        bad = engine.results["row 0"]
        assert bad.outcome is Outcome.FAILED and bad.status == 424
        assert bad.prerequisite is not None and bad.prerequisite.status == 404
        assert bad.prerequisite.outcome is Outcome.FAILED
        good = engine.results["row 1"]
        assert good.outcome is Outcome.APPLIED and good.prerequisite.outcome is Outcome.APPLIED
        assert client.get(f"/users/{users[1]['id']}?$select=usageLocation")["usageLocation"] == "FR"
        assert _delta(live, users, before)[0] == 0
    finally:
        _undo(client, [users[1], users[3]], sku)


def test_replication_lag_after_setting_usage_location_is_retried(live: Any, tmp_path: Path) -> None:
    client = sim_client(live, tmp_path)
    sku = free_sku(client, 3)
    users = users_without(client, sku, 3)
    before = _writes(live, users)
    live.options.usage_location_lag = 0.2
    ops = [
        assign_license(f"row {i}", u["id"], add={sku: []}, usage_location="NO")
        for i, u in enumerate(users)
    ]
    engine = _run(client, ops, lag_delay=0.1)
    live.options.usage_location_lag = 0.0
    try:
        assert all(r.outcome is Outcome.APPLIED for r in engine.results.values())
        assert max(r.attempts for r in engine.results.values()) >= 2
        assert _delta(live, users, before) == [1] * 3
    finally:
        _undo(client, users, sku)


class ShapeClient(GraphClient):
    """A real client that keeps every ``$batch``'s items, to check their shapes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()
        self.batches: list[list[dict[str, Any]]] = []

    def send_batch(self, items: list[dict[str, Any]], **kw: Any) -> BatchReply:
        with self.lock:
            self.batches.append(list(items))
        return super().send_batch(items, **kw)


def test_thirty_percent_prerequisites_all_applied_in_legal_batches(
    live: Any, tmp_path: Path
) -> None:
    client = ShapeClient(
        sim_settings(live, tmp_path), retry=RetryPolicy(backoff_base=0.05, backoff_cap=0.2)
    )
    sku = free_sku(client, 50)
    users = users_without(client, sku, 50)
    before = _writes(live, users)
    needing = {u["id"] for u in users[::10] + users[3::10] + users[7::10]}  # 15 of 50
    moved = {uid: "IS" for uid in needing}
    live.options.usage_location_lag = 0.2
    live.options.faults_writes_only = True
    live.options.fault_item_429 = 0.1
    live.options.fault_lost_ack = 0.05
    live.options.fault_retry_after = 0.1
    ops = [
        assign_license(f"row {i + 2}", u["id"], add={sku: []}, usage_location=moved.get(u["id"]))
        for i, u in enumerate(users)
    ]
    engine = _run(client, ops, lag_delay=0.1, breaker_min_attempts=1000)
    live.options.fault_item_429 = live.options.fault_lost_ack = 0.0
    try:
        assert client.batches and all(batch_shape_ok(b) for b in client.batches)
        assert {r.outcome for r in engine.results.values()} <= {
            Outcome.APPLIED,
            Outcome.VERIFIED_APPLIED,
        }
        assert len(engine.results) == 50
        for op in ops:
            if op.prerequisite is not None:
                result = engine.results[op.key]
                assert result.prerequisite is not None and result.prerequisite.ok
        assert all(sku in live.store.user_licenses(u["id"]) for u in users)
        located = {
            u["id"]: client.get(f"/users/{u['id']}?$select=usageLocation")["usageLocation"]
            for u in users
        }
        assert located == {u["id"]: moved.get(u["id"], u["usageLocation"]) for u in users}
        assert _delta(live, users, before) == [1] * 50
    finally:
        _undo(client, users, sku)
        for u in users:
            if u["id"] in needing:
                client.patch(f"/users/{u['id']}", {"usageLocation": u["usageLocation"]})


def test_breaker_trips_and_every_operation_is_accounted_for(live: Any, tmp_path: Path) -> None:
    client = sim_client(live, tmp_path)
    sku = free_sku(client, 1)
    ghosts = [
        assign_license(f"row {i}", f"00000000-0000-0000-0000-{i:012d}", add={sku: []})
        for i in range(300)
    ]
    seen: dict[str, Any] = {}
    engine = BatchEngine(
        client,
        quick_engine(max_concurrency=2, initial_concurrency=1),
        on_result=lambda op, r: seen.__setitem__(op.key, r),
    )
    with pytest.raises(GuardStopped) as info:
        engine.run(iter(ghosts), total=300)
    assert info.value.exit_code == 4
    assert len(seen) == 300
    failed = [r for r in seen.values() if r.outcome is Outcome.FAILED]
    assert 30 <= len(failed) < 300
    assert {r.outcome for r in seen.values()} == {Outcome.FAILED, Outcome.NOT_ATTEMPTED}


def test_forbidden_stops_at_once(live: Any, tmp_path: Path) -> None:
    client_id, secret = live.add_app(
        ["User.Read.All", "Organization.Read.All"], secret="read-only-engine-secret"
    )
    client = sim_client(live, tmp_path, client_id=client_id, client_secret=secret)
    users = list(client.get_all("/users", {"$top": 50, "$select": "id"}))[:50]
    ops = [
        assign_license(f"row {i}", u["id"], add={"6fd2c87f-b296-42f0-b197-1e91e994b900": []})
        for i, u in enumerate(users)
    ]
    seen: dict[str, Any] = {}
    engine = BatchEngine(
        client,
        quick_engine(max_concurrency=1, initial_concurrency=1),
        on_result=lambda op, r: seen.__setitem__(op.key, r),
    )
    with pytest.raises(PermissionDenied):
        engine.run(ops)
    assert len(seen) == 50
    assert sum(r.outcome is Outcome.FAILED for r in seen.values()) <= 20  # one batch at most
    assert client.stats.token_renewals + engine.stats.token_renewals >= 1


def test_token_expiring_mid_run_is_renewed(live: Any, tmp_path: Path) -> None:
    client = sim_client(live, tmp_path)
    sku = free_sku(client, 40)
    users = users_without(client, sku, 40)
    before = _writes(live, users)
    # Tokens carry whole-second "iat" claims: a token lives between expire_after - 1 and
    # expire_after seconds. Every request takes at least latency_ms, so the run (eight
    # batches, two at a time) lasts at least 4.8 s and outlives its first token whatever the
    # machine's speed, while a renewed token lives at least 3 s, longer than any request
    # needs even on a loaded machine.
    live.options.token_expire_after = 4.0
    live.options.latency_ms = 1200
    engine = _run(
        client, add_ops(users, sku), max_concurrency=2, initial_concurrency=2, batch_size=5
    )
    live.options.token_expire_after = None
    live.options.latency_ms = 0
    try:
        assert all(r.outcome is Outcome.APPLIED for r in engine.results.values())
        assert client.stats.token_renewals >= 1
        assert _delta(live, users, before) == [1] * 40
    finally:
        _undo(client, users, sku)
