"""Rows whose writes have all settled are read back while the other writes go on."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from batch.jobs.onboarding.earlyread import EarlyReadBack


def _prepared(rows: int, ops_per_row: int = 1) -> Any:
    plan_rows = [
        SimpleNamespace(
            row=n,
            user_id=f"id{n}",
            ops=[f"op{n}.{i}" for i in range(ops_per_row)],
            request=SimpleNamespace(user=f"user{n}@x.example"),
        )
        for n in range(rows)
    ]
    plan_rows.append(  # a row with nothing to write is never read early
        SimpleNamespace(row=999, user_id="id999", ops=[], request=SimpleNamespace(user="n@x"))
    )
    return SimpleNamespace(plan=SimpleNamespace(rows=plan_rows))


class _Reader:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.last: list[bool] = []
        self.read = threading.Event()

    def __call__(self, names: list[str], last: bool) -> dict[str, Any]:
        self.calls.append(names)
        self.last.append(last)
        self.read.set()
        return {name.casefold(): f"state of {name}" for name in names}


def test_rows_are_read_in_chunks_once_every_write_of_theirs_settled() -> None:
    reader = _Reader()
    early = EarlyReadBack(_prepared(7, ops_per_row=2), reader, chunk=3).start()
    for n in range(4):
        early.settled(f"op{n}.0")  # half of each row's writes: nothing is ready
    early.settled("unknown key")
    early.settled("op0.0")  # the same result twice counts once
    assert not reader.read.wait(0.2)
    for n in (2, 0, 1):
        early.settled(f"op{n}.1")  # rows 2, 0, 1 complete: one chunk of 3
    assert reader.read.wait(5)
    early.settled("op3.1")  # row 3 alone: less than a chunk, left for the read-back
    early.finish()
    assert reader.calls == [["user2@x.example", "user0@x.example", "user1@x.example"]]
    assert early.rows == {0, 1, 2}
    assert early.users["user1@x.example"] == "state of user1@x.example"


def test_a_failed_early_read_leaves_its_rows_to_the_read_back() -> None:
    from batch.errors import GraphRequestError

    failed = threading.Event()

    def read(names: list[str], last: bool) -> dict[str, Any]:
        failed.set()
        raise GraphRequestError("no answer", method="POST", url="https://graph/$batch")

    early = EarlyReadBack(_prepared(2), read, chunk=2).start()
    early.settled("op0.0")
    early.settled("op1.0")
    assert failed.wait(5)
    early.finish()
    assert early.rows == set() and early.users == {}


def test_when_the_writes_end_the_rest_is_read_at_once_in_the_background() -> None:
    reader = _Reader()
    early = EarlyReadBack(_prepared(5), reader, chunk=3).start()
    for n in range(5):
        early.settled(f"op{n}.0")  # one chunk of 3 goes; 2 rows are left, less than a chunk
    assert reader.read.wait(5)
    early.read_rest()
    assert early.join().rows == {0, 1, 2, 3, 4}
    assert reader.calls == [
        ["user0@x.example", "user1@x.example", "user2@x.example"],
        ["user3@x.example", "user4@x.example"],
    ]
    assert reader.last == [False, True]  # the rest is read the quick way
