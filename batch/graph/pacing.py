"""Pacing for the batch engine: run close to Graph's write quota without bouncing off it.

Graph's identity write quota is a token bucket per app and tenant (3,000 writes per 150 s,
graph-reference.md section 2) that the client cannot see. :class:`Pacer` is a client-side
token bucket of item sends per second whose rate is learnt from the service's feedback,
the way TCP learns a path's capacity:

- *slow start*: from ``initial_rate`` the rate doubles every ``interval`` while nothing is
  throttled, and the pacer was the bottleneck (it made a batch wait);
- on throttling (429 items, or a whole ``$batch`` answered 429) the rate is set to what the
  service actually *accepted* over the last ``window`` seconds, times ``backoff`` (0.95): when
  we send faster than the quota, the accepted rate *is* the quota. One decrease per
  ``cooldown``, so the many batches in flight that saw the same overload count once;
- afterwards it grows back quickly (x1.5 per ``interval``) while below 90 % of the rate
  the service accepted when it last throttled, then probes gently: ``increase`` x rate per
  interval, the step doubling with every clean interval (capped at 50 %), until the next 429;
- ``x-ms-throttle-limit-percentage`` (sent above 80 % of a limit) at or above 0.95 ends
  slow start: the quota is near, so stop doubling. It does not stop the gentle probing: a
  service that stays near its limit reports a high percentage all the time;
- a ``Retry-After`` holds every send until it has passed (the quota is shared by the whole
  app and tenant, so other items would be throttled too).

The engine is single-threaded around the pacer (all calls come from its dispatch loop), so
the pacer has no lock. Times are ``time.monotonic()`` seconds passed in by the caller.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass
class PacerSettings:
    """Tuning of :class:`Pacer`; the defaults suit Graph's identity write quota."""

    initial_rate: float = 40.0  #: items per second at the start (real quota: 20/s per app+tenant)
    min_rate: float = 1.0
    max_rate: float = 5000.0
    burst: int = 20  #: bucket size in items: one full $batch
    interval: float = 0.5  #: seconds between increases
    increase: float = 0.05  #: additive increase, as a fraction of the rate, per interval
    backoff: float = 0.95  #: new rate = accepted rate x backoff on throttling
    floor: float = 0.25  #: one decrease never goes below rate x floor
    window: float = 2.0  #: seconds of accepted items used to measure the service's rate
    cooldown: float = 0.5  #: minimum seconds between two decreases


class Pacer:
    """A token bucket of item sends whose rate adapts to throttling feedback (AIMD)."""

    def __init__(self, settings: PacerSettings | None = None, *, now: float = 0.0) -> None:
        self.settings = settings or PacerSettings()
        self.rate = self.settings.initial_rate
        self.slow_start = True
        self._tokens = float(self.settings.burst)
        self._refilled = now
        self._hold_until = now
        self._last_decrease = -1e9
        self._last_increase = now
        self._throttled_since_increase = False
        self._limited = False
        self._accepted: deque[tuple[float, int]] = deque()
        self._last_max = 0.0  # rate when last throttled
        self._step = self.settings.increase
        self.decreases = 0

    # -- sending ---------------------------------------------------------------------------

    def wait_time(self, items: int, now: float) -> float:
        """Seconds before ``items`` may be sent (0 when they may go now)."""
        self._refill(now)
        if now < self._hold_until:
            return self._hold_until - now
        needed = min(items, self.settings.burst)
        if self._tokens >= needed:
            return 0.0
        self._limited = True
        return (needed - self._tokens) / self.rate

    def take(self, items: int, now: float) -> None:
        """Spend tokens for ``items`` sent now."""
        self._refill(now)
        self._tokens -= min(items, self.settings.burst)

    def hold(self, until: float) -> None:
        """Send nothing before ``until`` (a Retry-After)."""
        self._hold_until = max(self._hold_until, until)

    # -- feedback --------------------------------------------------------------------------

    def accepted(self, items: int, now: float) -> None:
        """``items`` writes were accepted by the service."""
        if items:
            self._accepted.append((now, items))
        self._trim(now)

    def throttled(self, now: float) -> None:
        """The service answered 429: lower the rate to what it accepted (once per cooldown)."""
        self._throttled_since_increase = True
        self.slow_start = False
        if now - self._last_decrease < self.settings.cooldown:
            return
        self._trim(now)
        measured = self.accepted_rate(now)
        if measured > 0:
            new_rate = min(self.rate, measured * self.settings.backoff)
            # What the service accepted while saturated is the best guess of its quota.
            self._last_max = measured
        else:
            new_rate = self.rate * self.settings.floor
            self._last_max = min(self._last_max, self.rate) if self._last_max else self.rate
        new_rate = max(new_rate, self.rate * self.settings.floor, self.settings.min_rate)
        if new_rate >= self.rate:
            new_rate = max(self.settings.min_rate, self.rate * self.settings.backoff)
        self._step = self.settings.increase
        self.rate = new_rate
        self._last_decrease = now
        self.decreases += 1

    def limit_percentage(self, value: float, now: float) -> None:
        """The service reported ``x-ms-throttle-limit-percentage`` (0.8 to 1.8)."""
        if value >= 0.95:
            self.slow_start = False

    def tick(self, now: float) -> None:
        """Grow the rate when an interval passed without throttling and the pacer was limiting."""
        if now - self._last_increase < self.settings.interval:
            return
        if not self._throttled_since_increase and self._limited:
            if self.slow_start:
                grown = self.rate * 2
            elif self.rate < 0.9 * self._last_max:
                grown = min(self.rate * 1.5, 0.9 * self._last_max)
            else:
                grown = self.rate + max(1.0, self.rate * self._step)
                self._step = min(0.5, self._step * 2)
            self.rate = min(self.settings.max_rate, grown)
        self._last_increase = now
        self._throttled_since_increase = False
        self._limited = False

    def accepted_rate(self, now: float) -> float:
        """Writes accepted per second over the last ``window`` seconds."""
        self._trim(now)
        if not self._accepted:
            return 0.0
        span = max(self.settings.window * 0.25, now - self._accepted[0][0], 1e-3)
        span = min(span, self.settings.window)
        return sum(n for _, n in self._accepted) / span

    def _trim(self, now: float) -> None:
        while self._accepted and self._accepted[0][0] < now - self.settings.window:
            self._accepted.popleft()

    def _refill(self, now: float) -> None:
        if now > self._refilled:
            self._tokens = min(
                float(self.settings.burst), self._tokens + (now - self._refilled) * self.rate
            )
            self._refilled = now
