"""Counters of a batch engine's run, for progress lines and the report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class EngineStats:
    """Counters for progress lines and the report."""

    operations: int = 0  #: operations taken from the stream
    finished: int = 0
    requests: int = 0  #: $batch requests sent
    items_sent: int = 0
    throttled_items: int = 0  #: items answered 429 (inside a batch or with the whole batch)
    throttled_requests: int = 0  #: whole $batch requests answered 429
    retries: int = 0  #: items sent again
    lag_retries: int = 0  #: operations sent again after "invalid usage location" (lag)
    verifications: int = 0
    token_renewals: int = 0
    resource_units: float = 0.0
    failures: int = 0  #: item attempts counted as failed by the breaker
    attempts: int = 0  #: item attempts counted by the breaker
    outcomes: dict[str, int] = field(default_factory=dict)
    rate: float = 0.0  #: the pacer's current rate (items per second)
    quota_rate: float = 0.0  #: the write quota the pacer learnt (per second; 0: none yet)
    quota_window: float | None = None  #: the long window it learnt (seconds), if any
    concurrency: int = 0
    elapsed: float = 0.0

    def snapshot(self) -> EngineStats:
        """A copy safe to hand to another thread."""
        copy = EngineStats(**{k: v for k, v in asdict(self).items() if k != "outcomes"})
        copy.outcomes = dict(self.outcomes)
        return copy
