"""Simulated tenant, faults on demand: seeded, repeatable draws of what goes wrong.

One random generator seeded from ``SimulatorOptions.seed`` decides, per Graph operation,
per ``$batch``, per standalone request, per HTTP request and per read of a recently
written user, whether a fault fires. Draws happen in the order
requests arrive, so a single-threaded client sees the same faults on every run with the
same seed; rates are probabilities, so over many requests the observed rate approaches
the configured one.
"""

from __future__ import annotations

import random
import threading

from batch.simulator.options import SimulatorOptions
from batch.simulator.throttle import WRITE_METHODS


class FaultPlan:
    """The seeded fault generator of one running simulator."""

    def __init__(self, options: SimulatorOptions) -> None:
        self.options = options
        self._rng = random.Random(options.seed)
        self._shuffle_rng = random.Random(f"shuffle-{options.seed}")
        self._lock = threading.Lock()

    def _draw(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def item_fault(self, method: str) -> int | None:
        """An injected status (429/500/503/504) for one Graph operation, or None."""
        opts = self.options
        if opts.faults_writes_only and method.upper() not in WRITE_METHODS:
            return None
        for status, rate in (
            (429, opts.fault_item_429),
            (500, opts.fault_item_500),
            (503, opts.fault_item_503),
            (504, opts.fault_item_504),
        ):
            if self._draw(rate):
                return status
        return None

    def lost_ack(self, method: str) -> bool:
        """True when a write should be applied and then answered 504."""
        return method.upper() in WRITE_METHODS and self._draw(self.options.fault_lost_ack)

    def batch_fault(self) -> int | None:
        """An injected status (429/503/504) for a whole ``$batch``, or None."""
        opts = self.options
        for status, rate in (
            (429, opts.fault_batch_429),
            (503, opts.fault_batch_503),
            (504, opts.fault_batch_504),
        ):
            if self._draw(rate):
                return status
        return None

    def single_fault(self) -> int | None:
        """An injected status (429/500/503) for a whole standalone Graph request, or None."""
        opts = self.options
        for status, rate in (
            (429, opts.fault_single_429),
            (500, opts.fault_single_500),
            (503, opts.fault_single_503),
        ):
            if self._draw(rate):
                return status
        return None

    def read_lags(self) -> bool:
        """True when one read of one recently written user should show its older state."""
        return self._draw(self.options.read_lag)

    def reset_before(self) -> bool:
        """True when the connection should be dropped before the request is applied."""
        return self._draw(self.options.fault_reset_before)

    def reset_after(self) -> bool:
        """True when the connection should be dropped after the request was applied."""
        return self._draw(self.options.fault_reset_after)

    def shuffle(self, items: list[object]) -> None:
        """Shuffle ``$batch`` responses, repeatably."""
        with self._lock:
            self._shuffle_rng.shuffle(items)
