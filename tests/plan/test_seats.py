"""Seats settled wave by wave: the allocation matches the rule it implements, row for row.

The rule, written the plain way (every planned row visited in every wave, again on each
pass) is the reference; :func:`batch.run.seats.settle` must agree with it on the seats
taken, given back and missing, and on which rows fail for which SKUs.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence

import pytest

from batch.run.seats import FREE_WAVE, SWAP_WAVE, TAKE_WAVE, settle

WAVES = (FREE_WAVE, SWAP_WAVE, TAKE_WAVE)
SKUS = ("e3", "e5", "f1", "visio")


def reference(
    rows: Sequence[int],
    free: Mapping[str, int],
    takes: Mapping[int, list[tuple[int, str]]],
    frees: Mapping[int, list[tuple[int, str]]],
) -> tuple[Counter[str], Counter[str], Counter[str], dict[int, list[str]]]:
    failed: dict[int, list[str]] = {}
    while True:
        available = dict(free)
        taken: Counter[str] = Counter()
        freed: Counter[str] = Counter()
        shortfall: Counter[str] = Counter()
        newly: dict[int, list[str]] = {}
        for wave in WAVES:
            for row in rows:
                needed = Counter(sku for w, sku in takes.get(row, []) if w == wave)
                short = [sku for sku, n in needed.items() if available.get(sku, 0) < n]
                for sku in short:
                    shortfall[sku] += needed[sku] - max(0, available.get(sku, 0))
                if short and row not in failed:
                    newly.setdefault(row, []).extend(short)
                if short or row in failed or row in newly:
                    continue
                for sku, n in needed.items():
                    available[sku] -= n
                    taken[sku] += n
            for row in rows:
                if row in failed or row in newly:
                    continue
                for w, sku in frees.get(row, []):
                    if w == wave and sku in available:
                        available[sku] += 1
                        freed[sku] += 1
        if not newly:
            return taken, freed, shortfall, failed
        failed.update(newly)


def random_case(
    seed: int,
) -> tuple[
    list[int], dict[str, int], dict[int, list[tuple[int, str]]], dict[int, list[tuple[int, str]]]
]:
    rng = random.Random(seed)
    rows = list(range(2, 2 + rng.randint(1, 60)))
    free = {sku: rng.randint(0, 8) for sku in SKUS[:-1]}  # "visio": a SKU the tenant lacks
    takes: dict[int, list[tuple[int, str]]] = {}
    frees: dict[int, list[tuple[int, str]]] = {}
    for row in rows:
        kind = rng.random()
        if kind < 0.5:
            takes[row] = [(rng.choice(WAVES), rng.choice(SKUS)) for _ in range(rng.randint(1, 3))]
        if kind > 0.3:
            frees[row] = [(rng.choice(WAVES), rng.choice(SKUS)) for _ in range(rng.randint(1, 2))]
    return rows, free, takes, frees


@pytest.mark.parametrize("seed", range(300))
def test_settle_agrees_with_the_rule(seed: int) -> None:
    rows, free, takes, frees = random_case(seed)
    taken, freed, shortfall, failed = reference(rows, free, takes, frees)
    settled = settle(rows, free, takes, frees)
    assert settled.failed == failed
    assert (+settled.taken, +settled.freed, +settled.shortfall) == (+taken, +freed, +shortfall)


def test_a_row_short_of_seats_fails_whole_and_a_later_one_is_served() -> None:
    # row 2 wants two E3 but one is free: it fails and takes nothing; row 3 gets the seat
    settled = settle([2, 3], {"e3": 1}, {2: [(TAKE_WAVE, "e3")] * 2, 3: [(TAKE_WAVE, "e3")]}, {})
    assert settled.failed == {2: ["e3"]}
    assert settled.taken == Counter({"e3": 1}) and settled.shortfall == Counter({"e3": 1})


def test_a_seat_given_back_serves_only_later_waves() -> None:
    # row 3 frees an E3 in the take wave: row 2's take in that same wave cannot use it,
    # but a seat freed in the first wave serves a take in the last
    takes = {2: [(TAKE_WAVE, "e3")]}
    assert settle([2, 3], {"e3": 0}, takes, {3: [(TAKE_WAVE, "e3")]}).failed == {2: ["e3"]}
    settled = settle([2, 3], {"e3": 0}, takes, {3: [(FREE_WAVE, "e3")]})
    assert settled.failed == {} and settled.freed["e3"] == 1 and settled.taken["e3"] == 1


def test_a_failed_row_gives_nothing_back_so_a_later_row_fails_too() -> None:
    # row 2 swaps F1 for E3 (frees E3 in the swap wave) but no F1 is free: it fails, so
    # row 3, counting on that E3, fails as well (found on the second pass)
    takes = {2: [(SWAP_WAVE, "f1")], 3: [(TAKE_WAVE, "e3")]}
    frees = {2: [(SWAP_WAVE, "e3")]}
    settled = settle([2, 3], {"e3": 0, "f1": 0}, takes, frees)
    assert settled.failed == {2: ["f1"], 3: ["e3"]}
    assert settled.freed["e3"] == 0 and settled.taken == Counter()
