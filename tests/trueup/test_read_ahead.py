"""Reading ahead (the true-up's pages of users): every item in order, errors where they were."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from batch.errors import PermissionDenied
from batch.jobs.trueup.snapshot import read_ahead


def test_every_item_arrives_in_order() -> None:
    assert list(read_ahead(iter(range(5000)), ahead=7)) == list(range(5000))
    assert list(read_ahead(iter([]))) == []


def test_an_error_arrives_after_the_items_before_it() -> None:
    def pages() -> Iterator[int]:
        yield 1
        yield 2
        raise PermissionDenied("403 Authorization_RequestDenied", status=403)

    seen: list[int] = []
    with pytest.raises(PermissionDenied, match="403"):
        for item in read_ahead(pages()):
            seen.append(item)
    assert seen == [1, 2]


def test_a_caller_that_stops_early_stops_the_reading() -> None:
    produced: list[int] = []
    finished = threading.Event()

    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                produced.append(n)
                yield n
                n += 1
        finally:
            finished.set()

    items = read_ahead(endless(), ahead=10)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert finished.wait(5), "the reader went on reading"
    assert len(produced) < 100
