"""Reads in bulk: lookups packed 20 to a ``$batch``, several batches in flight, within budget.

A stand-in client answers ``$batch`` posts from a directory in memory, as Graph does
(``in`` on userPrincipalName or id, 400 for a query it refuses, 429 with Retry-After), and
records how many posts were in flight at once.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from batch.config import Settings
from batch.graph.answers import BatchReply
from batch.graph.client import GraphClient
from batch.graph.reads import MAX_IN_FLIGHT, ReadBudget, get_many

_IN = re.compile(r"\$filter=(\w+) in \((.*)\)&")


class _Graph:
    """``send_batch`` over a directory of users, counting posts in flight."""

    def __init__(self, users: int, *, refuse: set[str] = frozenset(), delay: float = 0.05):
        self.users = {
            f"user{i}@contoso.example": {"id": str(uuid.UUID(int=i + 1)), "n": i}
            for i in range(users)
        }
        for upn, user in self.users.items():
            user["userPrincipalName"] = upn
        self.by_id = {u["id"]: u for u in self.users.values()}
        self.refuse = refuse  # a lookup naming one of these is answered 400
        self.delay = delay
        self.throttle_once: set[str] = set()  # item urls answered 429 the first time
        self.posts: list[int] = []  # items per post
        self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()

    def send_batch(self, items: list[dict[str, Any]], **_: Any) -> BatchReply:
        assert 0 < len(items) <= 20
        with self._lock:
            self.posts.append(len(items))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.delay)
        with self._lock:
            self.in_flight -= 1
        responses = {item["id"]: self._answer(unquote(item["url"])) for item in items}
        return BatchReply(200, {}, responses)

    def _answer(self, url: str) -> dict[str, Any]:
        if url in self.throttle_once:
            self.throttle_once.discard(url)
            return {"status": 429, "headers": {"Retry-After": "1"}, "body": {}}
        prop, literals = _IN.search(url).groups()  # type: ignore[union-attr]
        values = [v.strip("'") for v in literals.split(",")]
        if len(values) > 15:
            return {"status": 400, "body": {"error": {"code": "Request_UnsupportedQuery"}}}
        if self.refuse & set(values):
            return {"status": 400, "body": {"error": {"code": "Request_BadRequest"}}}
        index = self.users if prop == "userPrincipalName" else self.by_id
        found = [index.get(v.lower() if prop == "userPrincipalName" else v) for v in values]
        return {"status": 200, "body": {"value": [u for u in found if u]}}


def _client(graph: _Graph) -> GraphClient:
    slept: list[float] = []
    client = GraphClient(
        Settings(home=Path("unused"), tenant_id="t", client_id="c", client_secret="s"),
        token_provider=lambda: "token",
        sleep=slept.append,
    )
    client.send_batch = graph.send_batch  # type: ignore[method-assign]
    client.slept = slept  # type: ignore[attr-defined]
    return client


def test_every_user_is_found_with_several_batches_in_flight() -> None:
    graph = _Graph(3_000)
    client = _client(graph)
    asked = [f"user{i}@contoso.example" for i in range(0, 3_000, 2)]  # 1,500: 100 lookups
    found = client.resolve_users(asked)
    assert set(found) == set(asked)
    assert all(found[upn]["userPrincipalName"] == upn for upn in asked)
    # 100 lookups of 15: fewer than 8 full batches, so spread over 8 batches in flight
    assert sorted(graph.posts) == [9] + [13] * 7
    assert 1 < graph.most_in_flight <= MAX_IN_FLIGHT
    # the round trip of a batch of reads is what the next choice of lookups is priced at
    assert client.stats.read_batches == 8 and client.stats.singles == 0
    assert client.stats.round_trips(default=0.2) == (0.2, 0.0)


def test_a_large_read_goes_20_to_a_batch() -> None:
    graph = _Graph(6_000)
    client = _client(graph)
    found = client.resolve_users([f"user{i}@contoso.example" for i in range(0, 6_000, 2)])
    assert len(found) == 3_000
    assert graph.posts == [20] * 10  # 200 lookups: 10 full batches, at most 8 in flight


def test_a_user_named_twice_and_a_missing_user() -> None:
    graph = _Graph(100)
    client = _client(graph)
    by_id = graph.users["user7@contoso.example"]["id"]
    asked = [f"user{i}@contoso.example" for i in range(40)]
    # user7 by UPN, by another spelling and by object id: three names, one user, in
    # different lookups (the ids go in their own chunk)
    asked += ["USER7@contoso.example", by_id, "nobody@contoso.example"]
    found = client.resolve_users(asked)
    assert found["user7@contoso.example"] is found["USER7@contoso.example"]
    assert found[by_id]["userPrincipalName"] == "user7@contoso.example"
    assert "nobody@contoso.example" not in found
    assert len(found) == 42


def test_a_lookup_graph_refuses_is_asked_again_one_by_one() -> None:
    graph = _Graph(200, refuse={"user33@contoso.example"})
    client = _client(graph)
    asked = [f"user{i}@contoso.example" for i in range(200)]
    found = client.resolve_users(asked)
    assert set(found) == set(asked) - {"user33@contoso.example"}
    # 14 lookups first (one refused), then its 15 users one by one: 15 more lookups
    assert sum(graph.posts) == 14 + 15


def test_a_throttled_lookup_is_sent_again_after_retry_after() -> None:
    graph = _Graph(600)
    client = _client(graph)
    asked = [f"user{i}@contoso.example" for i in range(600)]
    first = f"user{0}@contoso.example"
    graph.throttle_once = {
        unquote(p)
        for p in _paths(client, asked)
        if f"'{first}'" in unquote(p) or "'user300@" in unquote(p)
    }
    found = client.resolve_users(asked)
    assert set(found) == set(asked)
    assert sum(graph.posts) == 40 + 2 and client.slept == [1.0, 1.0]  # type: ignore[attr-defined]


def _paths(client: GraphClient, upns: list[str]) -> list[str]:
    from batch.graph.queries import chunks, users_filter_path

    return [
        users_filter_path("userPrincipalName", chunk, ["id", "userPrincipalName"])
        for chunk in chunks(upns, 15)
    ]


def test_the_read_budget_holds_back_what_would_pass_it() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    budget = ReadBudget(limit=100, window=10.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        budget.take(20)  # 100 units: all fit
    assert waits == []
    now[0] = 4.0
    budget.take(20)  # the window holds 100 until the first leaves it at 10 s
    assert waits == [pytest.approx(6.0)] and budget.waited == pytest.approx(6.0)
    budget.take(500)  # more than the limit alone goes once the window is empty
    assert now[0] >= 10.0


def test_get_many_keeps_paths_apart_and_answers_each_once() -> None:
    graph = _Graph(60)
    client = _client(graph)
    paths = _paths(client, [f"user{i}@contoso.example" for i in range(60)])
    answers = get_many(client, [*paths, paths[0]], in_flight=2)
    assert set(answers) == set(paths) and sum(graph.posts) == 4
    assert all(answer.status == 200 for answer in answers.values())
