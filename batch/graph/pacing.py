"""Pacing for the batch engine: run just under Graph's write quota without bouncing off it.

Graph's identity write quota is per app and tenant, over a window the client cannot see
(3,000 writes per 150 s, graph-reference.md section 2; the service calls it a token bucket).
:class:`Pacer` is a client-side token bucket of item sends per second whose rate it learns
from the service's answers; the engine asks it before every ``$batch`` how many items may go
(:meth:`Pacer.batch_limit`) and when (:meth:`Pacer.wait_time`), and tells it what came back
(:meth:`Pacer.answered`, :meth:`Pacer.throttled`).

- *Start burst*: a run of at most ``start_burst`` items (60: three full sends) goes at once,
  in full sends and without tokens: one round trip. Graph's quota holds 3,000 writes per
  150 s per app and tenant (graph-reference.md section 2): 60 are 2 % of it, whatever else
  the app is doing. A larger run starts slowly (a burst into a small quota would be answered
  429 in part). A 429 or a hold ends it.
- *Slow start*: from ``initial_rate`` the rate doubles every ``interval`` while nothing is
  throttled and the pacer was the bottleneck (it made a batch wait), but never beyond twice
  the rate the service is seen to accept.
- *Before the first 429* what is in flight is capped, so that a long window we are filling
  with a burst is not overrun by the batches in flight when it fills: Graph sends
  ``x-ms-throttle-limit-percentage`` once more than 0.8 of a limit is used, and a window
  holds at most the writes accepted so far; so without the header the window has room for a
  quarter of them (and at least the start burst), and with it for
  ``accepted / percentage - accepted`` (the percentage taken ``rounding`` lower, as it may
  be rounded up). One batch more may go: the one that meets the 429. Once the header has
  come and gone again the window is short (a long one only fills until it is throttled), and
  nothing is capped. The header also ends slow start, the rate then no faster than the
  accepted rate over the percentage, growing by ``near_growth`` per interval.
- *The first 429 tells the window*: its ``Retry-After`` is the time until the oldest write
  the service counts leaves its window. A long one (above ``long_after`` seconds) means we
  filled a long window with a burst, so the write it forgets first is our first one: the
  window is ``answered + Retry-After - first write`` (150 s on Graph; the service decided
  somewhere between the send and the answer, and the later bound never counts a write gone
  before the service does) and the limit is every write accepted in it (answers still in
  flight then are added as they come). The engine holds every send until the
  ``Retry-After`` (the quota is the whole app's). Then a model of the window (our accepted
  writes by send time, plus those in flight) keeps what it holds under the limit, and the
  bucket runs at ``long_pace`` (2) times the sustained rate limit / window: writes go as
  the model frees room, so a window filled unevenly (slowly at first, then fast) is filled
  the same way again as its writes leave it. Paced at the sustained rate instead, every
  later window would lose the echo of the first one's slow start (6 % of the quota at 200
  writes/s). A later 429 lowers the limit to what the window holds.
- A short ``Retry-After`` means a short window: the quota is the rate the service accepted
  over the sends of the last ``measure`` seconds since the last hold (accepted items over
  the time from the first send to the last, so sends of any size measure their rate, and
  over at least half of ``measure``: over less, a window with room left looks faster than it
  is). A first 429 sooner than that (a burst into an empty window) measures the window as
  the long one is measured, from its ``Retry-After``: the writes accepted over
  ``sent + Retry-After - first write`` (the rate a burst was sent at is not the quota). That
  first measure is low when the rate was still climbing, so it grows by ``near_growth`` per
  clean interval (the pacer made a send wait, nothing was throttled). A later 429 whose
  measure is within ``drop`` of the quota learnt confirms it: we were just over it or met
  the service's jitter, so it is lowered by ``decrease`` (3 %), and from then on grows by
  ``probe`` (0.3 %) per clean interval (so that at most one 429 in about ten intervals keeps
  it steady). Too soon after a hold to measure, it is lowered by ``decrease`` too. A measure
  further below moves the quota half way down to it, unconfirmed (a first measure taken too
  early, or a quota that dropped), and it grows back by ``near_growth`` only up to just
  under where it met the 429, then by ``probe``. One decrease per ``cooldown``: the batches
  in flight that met the same overload count once. While no share above ``near`` (0.8) is
  reported, under 0.85 of the limit is used (the figure may be rounded by ``rounding``):
  the quota is well above what was learnt, confirmed or not, and it grows by ``regrowth``
  (10 %) per clean interval.
- *Pace*: on a short window ``backoff`` (0.98) of the learnt quota (a long one: above), in
  sends of at most ``rate x granule`` items (1 to 20), so that a window's writes are spread
  over it rather than sent at once; on a short window ``rate x short_granule`` (a twentieth
  of a second): equal sends that do not divide the window's limit leave the rest unused
  (sends of 3 fit a limit of 20 only 6 times: 18), so they are kept small against a small
  quota; the bucket holds one send and a half (a send made late is caught up on). It does
  not fill during a hold, but keeps what it held: a hold of a few milliseconds (a 429's
  Retry-After on a short window) costs no send.

The engine is single-threaded around the pacer (all calls come from its dispatch loop), so
the pacer has no lock. Times are ``time.monotonic()`` seconds passed in by the caller.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass
class PacerSettings:
    """Tuning of :class:`Pacer`; the defaults suit Graph's identity write quota."""

    initial_rate: float = 40.0  #: items per second at the start
    start_burst: int = 60  #: items that may go at once at the start, in full sends
    min_rate: float = 1.0
    max_rate: float = 5000.0
    burst: int = 20  #: the most items one send may carry: one full $batch
    granule: float = 0.2  #: a send carries at most this many seconds of the rate
    short_granule: float = 0.05  #: the same once a short window's quota is learnt
    interval: float = 0.5  #: seconds between increases
    near_growth: float = 1.05  #: growth per interval once near the limit, before any 429
    regrowth: float = 1.1  #: growth per interval of a short window's quota, Graph saying under 0.85
    probe: float = 0.003  #: upward probe of a confirmed short window's quota, per interval
    drop: float = 0.1  #: a short window's measure within this of its quota confirms it
    decrease: float = 0.03  #: a confirmed short window's quota is lowered so much by a 429
    backoff: float = 0.98  #: pace at this fraction of the learnt quota
    long_pace: float = 2.0  #: on a long window, the bucket runs at this times the learnt rate
    floor: float = 0.25  #: one decrease never goes below rate x floor
    measure: float = 2.0  #: seconds of sends that measure a short window's quota
    long_after: float = 2.0  #: a longer Retry-After means a long window
    memory: float = 900.0  #: seconds of sends remembered: the longest window it can learn
    cooldown: float = 0.5  #: minimum seconds between two decreases
    near: float = 0.8  #: the limit percentage at which Graph starts reporting
    rounding: float = 0.05  #: the reported percentage may be this much above the true one


class Pacer:
    """A token bucket of item sends whose rate is learnt from the service's answers."""

    def __init__(
        self, settings: PacerSettings | None = None, *, now: float = 0.0, items: int | None = None
    ) -> None:
        """``items``: how many the run holds, when known (a run of at most ``start_burst``
        goes at once)."""
        self.settings = settings or PacerSettings()
        self.rate = self.settings.initial_rate
        self.slow_start = True
        #: the learnt sustained quota (writes per second); None before the first 429
        self.quota_rate: float | None = None
        #: the learnt window (seconds) when it is long; None for a short or unknown one
        self.quota_window: float | None = None
        #: the learnt limit (writes per ``quota_window``)
        self.quota_limit: float | None = None
        self.decreases = 0
        # items sent so far; a larger or unknown run has no start burst
        small = items is not None and items <= self.settings.start_burst
        self._sent_total = 0 if small else self.settings.start_burst
        self._tokens = float(
            max(1, min(self.settings.burst, int(self.rate * self.settings.granule)))
        )
        self._refilled = now
        self._hold_until = now
        self._last_decrease = -1e9
        self._last_increase = now
        self._clean = True  # not throttled since the last increase
        self._near_seen = True  # a percentage above ``near`` came since the last increase
        self._limited = False  # the bucket made a send wait since the last increase
        self._confirmed = False  # a 429 came near the short window's learnt quota
        self._ceiling: float | None = None  # a short window's quota when it last met a 429
        self._recent: deque[tuple[float, int]] = deque()  # (sent at, accepted) per send
        self._answers: deque[tuple[float, int]] = deque()  # (answered at, accepted)
        self._sends: deque[tuple[float, int]] = deque()  # (sent at, accepted)
        self._in_window = 0  # accepted items in ``_sends``
        self._first_sent: float | None = None  # send time of the first accepted write
        self._accepted_total = 0
        self._inflight = 0
        self._room: float | None = None  # at most this many writes fit the window (unlearnt)
        self._short = False  # the reported share went down again: the window is short

    # -- sending ---------------------------------------------------------------------------

    def batch_limit(self) -> int:
        """The most items the next send may carry."""
        s = self.settings
        if self._starting():
            return s.burst
        short = self.quota_rate is not None and self.quota_window is None
        granule = s.short_granule if short else s.granule
        return max(1, min(s.burst, int(self.rate * granule)))

    def wait_time(self, items: int, now: float) -> float:
        """Seconds before ``items`` may be sent (0 when they may go now)."""
        self._refill(now)
        if now < self._hold_until:
            return self._hold_until - now
        needed = min(items, self.settings.burst)
        room = self._window_wait(needed, now)
        if room > 0:
            return room
        if (
            self._starting(needed) or self._tokens >= needed - 1e-9
        ):  # what the refill's rounding may leave short
            return 0.0
        self._limited = True
        return (needed - self._tokens) / self.rate

    def take(self, items: int, now: float) -> None:
        """Spend tokens for ``items`` sent now; they are in flight until answered."""
        self._refill(now)
        if not self._starting(items):
            self._tokens -= min(items, self.settings.burst)
        self._sent_total += items
        self._inflight += items

    def hold(self, until: float) -> None:
        """Send nothing before ``until`` (a Retry-After): the bucket keeps what it holds (a
        hold of a few ms must not cost a send) but does not fill meanwhile."""
        self._sent_total = max(self._sent_total, self.settings.start_burst)  # no start burst
        if until > self._hold_until:
            self._hold_until = until
            self._tokens = max(self._tokens, 0.0)
            self._refilled = max(self._refilled, until)

    def _starting(self, items: int = 1) -> bool:
        """``items`` more still fit the start burst (nothing was throttled yet)."""
        fits = self._sent_total + items <= self.settings.start_burst
        return fits and self.quota_rate is None and self.decreases == 0

    # -- feedback --------------------------------------------------------------------------

    def answered(
        self,
        items: int,
        accepted: int,
        now: float,
        *,
        sent_at: float | None = None,
        limit_percentage: float | None = None,
    ) -> None:
        """A send of ``items`` was answered: ``accepted`` of them were carried out.

        ``limit_percentage`` is the highest ``x-ms-throttle-limit-percentage`` in the answer
        (None when the service sent none: less than 0.8 of every limit is used).
        """
        sent = now if sent_at is None else sent_at
        self._inflight = max(0, self._inflight - items)
        if limit_percentage is not None and limit_percentage > self.settings.near:
            self._near_seen = True
        self._recent.append((sent, accepted))
        if accepted:
            self._answers.append((now, accepted))
            self._sends.append((sent, accepted))
            self._in_window += accepted
            self._accepted_total += accepted
            if self._first_sent is None or sent < self._first_sent:
                self._first_sent = sent
            self._late_in_first_window(sent, accepted)
        self._trim(now)
        self._near_limit(limit_percentage, now)

    def throttled(
        self, now: float, *, retry_after: float | None = None, sent_at: float | None = None
    ) -> None:
        """The service answered 429 (to items or to the whole send): learn the quota from it."""
        s = self.settings
        self._clean = False
        self.slow_start = False
        self._room = None
        if now - self._last_decrease < s.cooldown:
            return
        self._trim(now)
        sent = now if sent_at is None else sent_at
        if self.quota_window is not None:
            self._limit_from_window()
        elif (
            retry_after is not None and retry_after > s.long_after and self._first_sent is not None
        ):
            # the 429 was decided between sending and answering: the later bound keeps
            # the window's model from counting a write gone before the service does
            self._learn_long_window(now + retry_after - self._first_sent)
        else:
            self._learn_short_window(now, sent, retry_after)
        self._last_decrease = now
        self.decreases += 1

    def tick(self, now: float) -> None:
        """Grow the rate when an interval passed without throttling and the pacer was limiting."""
        s = self.settings
        if now - self._last_increase < s.interval:
            return
        if self._clean and self._limited:
            if self.slow_start:
                # double, but stay within twice what the service is seen to accept
                self.rate = min(self.rate * 2, max(self.rate, 2 * self.accepted_rate(now)))
            elif self.quota_rate is None:
                self.rate *= s.near_growth
            elif self.quota_window is None:  # a short window: probe its quota upwards
                probed = self.quota_rate * (1 + s.probe)
                if not self._near_seen:  # Graph says under 0.85 of the limit: well below it
                    probed = self.quota_rate * s.regrowth
                elif not self._confirmed:  # quickly back to just under where it met a 429
                    ceiling = self._ceiling * (1 - s.decrease) if self._ceiling else math.inf
                    probed = max(probed, min(self.quota_rate * s.near_growth, ceiling))
                self.quota_rate = probed
                self.rate = self.quota_rate * s.backoff
            self.rate = max(s.min_rate, min(s.max_rate, self.rate))
        self._last_increase = now
        self._clean = True
        self._limited = False
        self._near_seen = False

    def accepted_rate(self, now: float) -> float:
        """Writes accepted per second over the last ``measure`` seconds (by answer time)."""
        self._trim(now)
        if not self._answers:
            return 0.0
        span = max(self.settings.measure * 0.25, now - self._answers[0][0], 1e-3)
        span = min(span, self.settings.measure)
        return sum(n for _, n in self._answers) / span

    # -- learning --------------------------------------------------------------------------

    def _learn_short_window(self, now: float, sent: float, retry_after: float | None) -> None:
        """A 429 on a short window: the first measures the quota (the rate the service just
        accepted); a later one lowers it by ``decrease``, or half way to a clearly lower
        measure (see the module's docstring)."""
        s = self.settings
        previous = self._ceiling = self.quota_rate
        # only sends since the last hold ended: the hold's pause is not the service's rate
        measured = self.sent_rate(now, since=self._hold_until)
        if measured is None and previous is not None:
            measured = previous  # too soon after the last hold to measure: a small step
        if measured is None:
            measured = self._first_window_rate(sent, retry_after) or self.accepted_rate(now)
        if not measured:
            self.rate = max(s.min_rate, self.rate * s.floor)
            return
        if previous is None:
            self._confirmed = False
            self.quota_rate = measured
        else:
            # Near what was learnt it is confirmed: we were just over it, or met the
            # service's jitter. Further below, the quota moves half way to the measure (a
            # first measure may have been taken too early, or the quota may have dropped).
            self._confirmed = measured >= previous * (1 - s.drop)
            halfway = previous + min(0.0, measured - previous) / 2
            self.quota_rate = min(previous * (1 - s.decrease), halfway)
        self.rate = max(s.min_rate, self.quota_rate * s.backoff)

    def _first_window_rate(self, sent: float, retry_after: float | None) -> float | None:
        """A first 429 within a second or so of the first write: the window it fills was empty
        at our first write, which is the first to leave it (after ``retry_after``); the rate
        is what the window accepted over its length. None without a Retry-After."""
        if retry_after is None or self._first_sent is None:
            return None
        window = sent + retry_after - self._first_sent
        accepted = sum(n for at, n in self._sends if at < sent)
        return accepted / window if window > 0 and accepted else None

    def sent_rate(self, now: float, *, since: float | None = None) -> float | None:
        """Writes accepted per second of sending, over the sends of the last ``measure``
        seconds (and not before ``since``): the accepted items of every send but the first,
        over the time from the first send to the last (so sends of any size measure their
        rate exactly). None with fewer than three sends, or over less than half of it."""
        self._trim(now)
        start = max(now - self.settings.measure, since if since is not None else -1e18)
        recent = sorted(e for e in self._recent if e[0] >= start)
        if len(recent) < 3 or recent[-1][0] - recent[0][0] < self.settings.measure / 2:
            return None  # too short: a window with room left would look faster than it is
        return sum(n for _, n in recent[1:]) / (recent[-1][0] - recent[0][0])

    def _learn_long_window(self, window: float) -> None:
        """The first 429 after a burst into a long window: every accepted write is in it."""
        assert self._first_sent is not None
        self.quota_window = window
        self.quota_limit = float(sum(n for at, n in self._sends if at < self._first_sent + window))
        self._set_long_rate()

    def _late_in_first_window(self, sent: float, accepted: int) -> None:
        """An answer that came after the window was learnt, for a write sent in its first
        window (it was in flight): the limit counts it too."""
        if self.quota_window is None or self.quota_limit is None or self._first_sent is None:
            return
        if sent < self._first_sent + self.quota_window:
            self.quota_limit += accepted
            self._set_long_rate()

    def _limit_from_window(self) -> None:
        """A 429 on a learnt long window: the limit is at most what the window holds now."""
        assert self.quota_window is not None
        held = float(self._in_window)
        if self.quota_limit is None or held < self.quota_limit:
            self.quota_limit = max(1.0, held)
        self._set_long_rate()

    def _set_long_rate(self) -> None:
        s = self.settings
        assert self.quota_window is not None and self.quota_limit is not None
        self.quota_rate = self.quota_limit / self.quota_window
        self.rate = max(s.min_rate, min(s.max_rate, self.quota_rate * s.long_pace))

    def _near_limit(self, value: float | None, now: float) -> None:
        s = self.settings
        if value is None or value <= s.near:
            # a long window only fills until we stop: the share going down means it is short
            self._short = self._short or self._room is not None
            self._room = None
            return
        if self.slow_start and self.quota_rate is None:
            # as much as the service accepts now would fill the limit: go no faster
            accepting = self.sent_rate(now) or self.accepted_rate(now)
            self.rate = max(s.min_rate, min(self.rate, accepting / value))
        self.slow_start = False
        if self.quota_rate is None:
            # The window holds at most what was accepted so far: the limit is at most that
            # divided by the share of it used (the reported share may be rounded up).
            share = max(value - s.rounding, s.near - s.rounding)
            self._room = self._accepted_total / share

    def _window_wait(self, items: int, now: float) -> float:
        """Seconds until ``items`` more fit the window's limit as modelled (0: they fit)."""
        s = self.settings
        if self.quota_rate is None and self._inflight and not self._short:
            # Unlearnt: with no percentage reported a long window is at most 0.8 full, so it
            # has room for a quarter of what it holds; with one, as much as that says. One
            # batch more may be in flight (the one that meets the 429 that tells the window).
            room = self._accepted_total * (1 / s.near)
            if self._room is not None:
                room = min(room, self._room)
            cap = max(s.start_burst, s.burst + room - self._accepted_total)
            return s.interval if self._inflight + items > cap else 0.0
        if self.quota_window is None or self.quota_limit is None:
            return 0.0
        self._trim(now)
        excess = self._in_window + self._inflight + items - self.quota_limit
        if excess <= 0:
            return 0.0
        freed = 0
        for at, n in self._sends:
            freed += n
            if freed >= excess:
                return max(1e-3, at + self.quota_window - now)
        return self.settings.interval  # what is in flight is the excess: wait for answers

    # -- bookkeeping -----------------------------------------------------------------------

    def _trim(self, now: float) -> None:
        s = self.settings
        while self._answers and self._answers[0][0] < now - s.measure:
            self._answers.popleft()
        while self._recent and self._recent[0][0] < now - 2 * s.measure:
            self._recent.popleft()
        horizon = self.quota_window if self.quota_window is not None else s.memory
        while self._sends and self._sends[0][0] <= now - horizon:
            self._in_window -= self._sends.popleft()[1]

    def _refill(self, now: float) -> None:
        if now > self._refilled:
            # half a send more than one send: a send made late (the loop woke late) is caught
            # up on rather than lost
            cap = 1.5 * self.batch_limit()
            self._tokens = min(cap, self._tokens + (now - self._refilled) * self.rate)
            self._refilled = now


def reported_percentage(headers: Mapping[str, str]) -> float | None:
    """An answer's ``x-ms-throttle-limit-percentage`` (sent above 0.8 of a limit), else None."""
    try:
        value = float(headers.get("x-ms-throttle-limit-percentage") or 0)
    except ValueError:
        return None
    return value or None
