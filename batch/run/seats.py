"""Seats, settled wave by wave: which planned rows get every seat they need.

Writes run in three waves (see :mod:`batch.run.plan`): what only gives seats back, then
swaps, then what only takes seats. Within a wave, rows are served in sheet order; a seat
given back in a wave serves only the later waves (writes within a wave run concurrently).
A row that cannot get every seat it needs fails whole and gives nothing back, which can
make a later row short too, so the allocation repeats until no new row fails (it only
ever adds failures).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["FREE_WAVE", "SWAP_WAVE", "TAKE_WAVE", "Settlement", "settle"]

#: waves: writes that only give seats back go first, then swaps (which give one SKU's seat
#: back as they take another's), then writes that only take seats
FREE_WAVE, SWAP_WAVE, TAKE_WAVE = 0, 1, 2
WAVES = (FREE_WAVE, SWAP_WAVE, TAKE_WAVE)

#: a row's seats: (wave, skuId), one entry a seat
Seats = Sequence[tuple[int, str]]


@dataclass
class Settlement:
    """Seats per SKU taken, given back and missing; the rows that failed, with their SKUs."""

    taken: Counter[str] = field(default_factory=Counter)
    freed: Counter[str] = field(default_factory=Counter)
    shortfall: Counter[str] = field(default_factory=Counter)
    failed: dict[int, list[str]] = field(default_factory=dict)  # row -> SKUs it was short of


def settle(
    rows: Sequence[int],
    free: Mapping[str, int],
    takes: Mapping[int, Seats],
    frees: Mapping[int, Seats],
) -> Settlement:
    """Serve ``rows`` (in sheet order) from the ``free`` seats per SKU, wave by wave.

    :param takes: row -> the seats it takes; :param frees: row -> the seats it gives back.
    """
    needs, gives = _by_wave(rows, takes, frees)
    failed: dict[int, list[str]] = {}
    while True:
        result = Settlement(failed=failed)
        available = dict(free)
        newly: dict[int, list[str]] = {}
        for wave in WAVES:
            for row, needed in needs[wave]:
                short = [sku for sku, n in needed.items() if available.get(sku, 0) < n]
                for sku in short:
                    result.shortfall[sku] += needed[sku] - max(0, available.get(sku, 0))
                if short and row not in failed:
                    newly.setdefault(row, []).extend(short)
                if short or row in failed or row in newly:
                    continue
                for sku, n in needed.items():
                    available[sku] -= n
                    result.taken[sku] += n
            for row, given in gives[wave]:  # seats given back serve the next waves
                if row in failed or row in newly:
                    continue
                for sku in given:
                    if sku in available:
                        available[sku] += 1
                        result.freed[sku] += 1
        if not newly:
            return result
        failed.update(newly)


def _by_wave(
    rows: Sequence[int], takes: Mapping[int, Seats], frees: Mapping[int, Seats]
) -> tuple[dict[int, list[tuple[int, dict[str, int]]]], dict[int, list[tuple[int, list[str]]]]]:
    """Per wave, in sheet order: the rows that take seats (how many of each SKU) and the
    rows that give seats back; a row with neither in a wave plays no part in it."""
    needs: dict[int, list[tuple[int, dict[str, int]]]] = {wave: [] for wave in WAVES}
    gives: dict[int, list[tuple[int, list[str]]]] = {wave: [] for wave in WAVES}
    for row in rows:
        row_needs: dict[int, dict[str, int]] = {}
        for wave, sku in takes.get(row, ()):
            counts = row_needs.setdefault(wave, {})
            counts[sku] = counts.get(sku, 0) + 1
        for wave in sorted(row_needs):
            needs[wave].append((row, row_needs[wave]))
        row_gives: dict[int, list[str]] = {}
        for wave, sku in frees.get(row, ()):
            row_gives.setdefault(wave, []).append(sku)
        for wave in sorted(row_gives):
            gives[wave].append((row, row_gives[wave]))
    return needs, gives
