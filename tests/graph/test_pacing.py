"""The pacer on its own, with fake time: what it learns from answers and what it lets go."""

from __future__ import annotations

import pytest

from batch.graph.pacing import Pacer, PacerSettings, reported_percentage


def _burst(pacer: Pacer, sends: int, items: int, every: float, start: float = 0.0) -> float:
    """``sends`` sends of ``items``, all accepted, one every ``every`` seconds from
    ``start``; each answered 0.4 s after it went. Returns the last answer's time."""
    at = start
    for i in range(sends):
        sent = start + i * every
        pacer.take(items, sent)
        at = sent + 0.4
        pacer.answered(items, items, at, sent_at=sent)
    return at


def test_a_long_retry_after_teaches_the_window_and_its_limit() -> None:
    """300 writes accepted in a burst from t=0, then a 429 on a send at t=1.5, answered at
    t=1.9, whose Retry-After (13.5 s) says the first write leaves the window 13.5 s after
    the service decided: at the latest at 1.9 + 13.5, so the window is taken as 15.4 s (a
    write is never counted gone before the service forgets it). The limit is 300; the
    bucket runs at twice the sustained rate and the window's model keeps the limit."""
    pacer = Pacer(PacerSettings(), now=0.0)
    at = _burst(pacer, 15, 20, 0.1)
    pacer.take(20, 1.5)
    pacer.answered(20, 0, 1.9, sent_at=1.5)
    pacer.throttled(1.9, retry_after=13.5, sent_at=1.5)
    assert at < 1.9
    assert pacer.quota_window == pytest.approx(15.4)
    assert pacer.quota_limit == 300
    assert pacer.quota_rate == pytest.approx(300 / 15.4)
    assert pacer.rate == pytest.approx(2 * 300 / 15.4)


def test_a_write_in_flight_when_the_window_was_learnt_counts_in_its_limit() -> None:
    pacer = Pacer(PacerSettings(), now=0.0)
    _burst(pacer, 14, 20, 0.1)  # 280 accepted
    pacer.take(20, 1.4)  # in flight, sent before the one throttled
    pacer.take(20, 1.5)
    pacer.answered(20, 0, 1.9, sent_at=1.5)
    pacer.throttled(1.9, retry_after=13.5, sent_at=1.5)
    assert pacer.quota_limit == 280
    pacer.answered(20, 20, 2.0, sent_at=1.4)
    assert pacer.quota_limit == 300
    assert pacer.quota_rate == pytest.approx(300 / 15.4)


def test_after_a_long_hold_each_window_is_filled_as_the_service_frees_it() -> None:
    """Once the Retry-After has passed, writes go as the first window's leave it (a
    sliding window frees them in the order they came), at most twice the sustained rate
    and a batch at a time: the second window takes its whole limit, never more."""
    pacer = Pacer(PacerSettings(), now=0.0)
    _burst(pacer, 15, 20, 0.1)
    pacer.take(20, 1.5)
    pacer.answered(20, 0, 1.9, sent_at=1.5)
    pacer.throttled(1.9, retry_after=13.5, sent_at=1.5)
    pacer.hold(1.9 + 13.5)
    assert pacer.wait_time(1, 10.0) == pytest.approx(5.4)
    limit = pacer.batch_limit()
    assert limit == 7  # 39/s x 0.2 s
    sent: list[float] = []
    now = 15.4
    while now < 15.4 + 15.4:  # the second window
        wait = pacer.wait_time(limit, now)
        if wait > 0:
            now += wait
            continue
        pacer.take(limit, now)
        pacer.answered(limit, limit, now + 0.4, sent_at=now)
        sent += [now] * limit
    assert 290 <= len(sent) <= 300  # the window's limit, used
    soon = 15.4 + 300 / pacer.rate + 0.5  # at twice the sustained rate
    assert sum(1 for at in sent if at < soon) >= 280


def test_the_window_model_keeps_what_it_holds_under_the_limit() -> None:
    pacer = Pacer(PacerSettings(), now=0.0)
    _burst(pacer, 15, 20, 0.1)
    pacer.take(20, 1.5)
    pacer.answered(20, 0, 1.9, sent_at=1.5)
    pacer.throttled(1.9, retry_after=13.5, sent_at=1.5)
    pacer.rate = 1000.0  # even a fast bucket cannot send into a full window
    # the write sent at t=0 leaves the window (of 15.4 s) at t=15.4: not before
    assert pacer.wait_time(1, 14.0) == pytest.approx(1.4)
    assert pacer.wait_time(20, 15.41) == 0.0  # the 20 sent at t=0 have left
    pacer.take(20, 15.41)
    # in flight, they fill the window again until the send of t=0.1 leaves it
    assert pacer.wait_time(1, 15.41) == pytest.approx(0.09)


def test_a_short_retry_after_measures_the_accepted_rate() -> None:
    """A 429 with a short Retry-After on a service accepting 100/s while we sent faster:
    the quota is what was accepted (not the send rate), and nothing is held as a long
    window."""
    pacer = Pacer(PacerSettings(), now=0.0)
    pacer.rate = 150.0
    _burst(pacer, 30, 10, 0.1)  # 10 accepted per send, 10 sends a second
    pacer.throttled(3.3, retry_after=0.05, sent_at=2.9)
    assert pacer.quota_window is None
    assert pacer.quota_rate == pytest.approx(100.0)
    assert pacer.rate == pytest.approx(98.0)


def _grow(pacer: Pacer, now: float, percentage: float | None = 0.9) -> None:
    """One clean interval in which the bucket made a send wait, and the service reported
    ``percentage`` of its limit used."""
    pacer.tick(now)  # closes the interval with the 429
    pacer.take(20, now + 0.1)
    assert pacer.wait_time(20, now + 0.1) > 0
    pacer.answered(0, 0, now + 0.2, sent_at=now + 0.1, limit_percentage=percentage)
    pacer.tick(now + 0.5)


def test_a_short_window_quota_once_confirmed_moves_in_small_steps() -> None:
    settings = PacerSettings(cooldown=0.0)
    pacer = Pacer(settings, now=0.0)
    _burst(pacer, 30, 10, 0.1)  # 100/s accepted
    pacer.throttled(3.3, retry_after=0.05, sent_at=2.9)
    assert pacer.quota_rate == pytest.approx(100.0)
    _grow(pacer, 3.4)  # not confirmed yet: grows by near_growth
    assert pacer.quota_rate == pytest.approx(100.0 * settings.near_growth)
    # a 429 measuring 95/s, within 10 % of 105: confirmed, half way down to the measure
    _burst(pacer, 15, 19, 0.2, start=4.0)
    pacer.throttled(7.3, retry_after=0.05, sent_at=6.9)
    assert pacer.quota_rate == pytest.approx(100.0)
    assert pacer.rate == pytest.approx(98.0)
    _grow(pacer, 7.4)  # confirmed: grows by probe
    assert pacer.quota_rate == pytest.approx(100.0 * (1 + settings.probe))
    # a 429 at the quota: 2 % down
    _burst(pacer, 30, 10, 0.1, start=8.0)  # 100/s
    pacer.throttled(11.3, retry_after=0.05, sent_at=10.9)
    confirmed = 100.0 * (1 + settings.probe) * (1 - settings.decrease)
    assert pacer.quota_rate == pytest.approx(confirmed)
    # a clearly lower measure: half way down, and growing fast again until confirmed
    _burst(pacer, 30, 5, 0.1, start=12.0)  # 50/s
    pacer.throttled(15.3, retry_after=0.05, sent_at=14.9)
    assert pacer.quota_rate == pytest.approx((confirmed + 50.0) / 2)
    _grow(pacer, 15.4)
    assert pacer.quota_rate == pytest.approx((confirmed + 50.0) / 2 * settings.near_growth)
    # fast only up to just under where it met the 429, then by probe
    for i in range(10):
        _grow(pacer, 16.0 + i)
    ceiling = confirmed * (1 - settings.decrease)
    assert ceiling < pacer.quota_rate <= ceiling * (1 + settings.probe) ** 10


def test_a_short_window_quota_grows_faster_while_graph_reports_it_well_below() -> None:
    """No percentage reported (or 0.8): under 0.85 of the limit is used, so the quota is
    clearly above what was learnt: it grows by ``regrowth``, confirmed or not."""
    settings = PacerSettings(cooldown=0.0)
    pacer = Pacer(settings, now=0.0)
    _burst(pacer, 30, 10, 0.1)  # 100/s accepted
    pacer.throttled(3.3, retry_after=0.05, sent_at=2.9)
    _grow(pacer, 3.4, percentage=None)
    assert pacer.quota_rate == pytest.approx(100.0 * settings.regrowth)
    _grow(pacer, 4.4, percentage=0.8)
    assert pacer.quota_rate == pytest.approx(100.0 * settings.regrowth**2)
    _grow(pacer, 5.4, percentage=0.9)  # near the limit again: back to small steps
    assert pacer.quota_rate == pytest.approx(100.0 * settings.regrowth**2 * settings.near_growth)


def test_one_decrease_per_cooldown() -> None:
    pacer = Pacer(PacerSettings(cooldown=0.5), now=0.0)
    _burst(pacer, 30, 10, 0.1)
    pacer.throttled(3.3, retry_after=0.05, sent_at=2.9)
    rate = pacer.rate
    pacer.throttled(3.4, retry_after=0.05, sent_at=3.0)
    assert pacer.rate == rate
    assert pacer.decreases == 1


def test_before_any_429_in_flight_is_capped_by_what_was_accepted() -> None:
    """No percentage reported: a window is at most 0.8 full, so a quarter of the writes
    accepted so far (plus one batch) may be in flight."""
    pacer = Pacer(PacerSettings(initial_rate=10_000), now=0.0)
    _burst(pacer, 10, 20, 0.01)  # 200 accepted
    pacer.take(60, 1.0)
    assert pacer.wait_time(10, 2.0) == 0.0  # 70 <= 20 + 200 / 4
    pacer.take(10, 2.0)
    assert pacer.wait_time(1, 3.0) > 0


def test_a_reported_percentage_ends_slow_start_and_tightens_the_cap() -> None:
    """At 0.9 reported (true share at least 0.85) with 240 accepted the limit is at most
    282: one batch more than the 42 left may be in flight."""
    pacer = Pacer(PacerSettings(initial_rate=10_000), now=0.0)
    _burst(pacer, 12, 20, 0.01)  # 240 accepted
    pacer.take(60, 1.0)
    pacer.take(20, 1.0)
    pacer.answered(20, 0, 1.4, sent_at=1.0, limit_percentage=0.9)
    assert not pacer.slow_start
    assert pacer.wait_time(2, 2.0) == 0.0  # 60 + 2 <= 20 + 282 - 240
    assert pacer.wait_time(3, 2.0) > 0
    # an answer without the header: the share went down, so the window is short (a long
    # one only fills): nothing is capped any more
    pacer.answered(0, 0, 2.1, sent_at=1.1)
    pacer.take(200, 3.0)
    assert pacer.wait_time(20, 4.0) == 0.0


def test_slow_start_doubles_only_while_the_service_keeps_up() -> None:
    pacer = Pacer(PacerSettings(initial_rate=40, interval=0.5), now=0.0)
    _burst(pacer, 5, 4, 0.1)  # 40/s accepted
    pacer.wait_time(1000, 0.6)  # the bucket limits
    pacer.tick(0.6)
    assert pacer.rate == 80
    pacer.wait_time(1000, 1.2)
    pacer.tick(1.2)
    # nothing more was accepted since (25/s over the last 0.8 s): no doubling to 160
    assert pacer.accepted_rate(1.2) == pytest.approx(25.0)
    assert pacer.rate == 80


def test_a_hold_stops_the_bucket_filling() -> None:
    """Tokens held before a hold stay (a Retry-After of a few ms must not cost a send);
    none come in during it."""
    pacer = Pacer(PacerSettings(initial_rate=100), now=0.0)
    assert pacer.wait_time(20, 0.0) == 0.0
    pacer.hold(1.0)
    assert pacer.wait_time(20, 0.5) == pytest.approx(0.5)
    assert pacer.wait_time(20, 1.0) == 0.0  # the 20 tokens of t=0
    pacer.take(20, 1.0)
    assert pacer.wait_time(20, 1.0) == pytest.approx(0.2)  # 20 items at 100/s


@pytest.mark.parametrize(
    "headers, value",
    [
        ({"x-ms-throttle-limit-percentage": "0.9"}, 0.9),
        ({}, None),
        ({"x-ms-throttle-limit-percentage": "n/a"}, None),
    ],
)
def test_reported_percentage(headers: dict[str, str], value: float | None) -> None:
    assert reported_percentage(headers) == value


def test_a_first_429_within_the_first_window_measures_it_from_its_retry_after() -> None:
    """Sends of 4 every 0.1 s from t=0 (40/s) into an empty 1 s window of 20: the 429 on
    the send at t=0.5 says (Retry-After 0.5 s) the first write leaves at t=1.0, so the
    window is 1 s and it accepted 20: 20/s, not the 40/s the burst was sent at."""
    pacer = Pacer(PacerSettings(), now=0.0)
    _burst(pacer, 5, 4, 0.1)
    pacer.throttled(0.9, retry_after=0.5, sent_at=0.5)
    assert pacer.quota_window is None
    assert pacer.quota_rate == pytest.approx(20.0)


def test_a_short_window_quota_takes_small_sends() -> None:
    """Once a short window's quota is learnt a send carries a twentieth of a second of the
    rate (1 item at 20/s: equal sends of 3 would fit only 6 to a window of 20)."""
    pacer = Pacer(PacerSettings(), now=0.0)
    pacer.rate = 100.0
    assert pacer.batch_limit() == 20
    _burst(pacer, 5, 4, 0.1)
    pacer.throttled(0.9, retry_after=0.5, sent_at=0.5)
    assert pacer.batch_limit() == 1  # 19.6/s x 0.05 s
    pacer.quota_rate, pacer.rate = 200.0, 196.0
    assert pacer.batch_limit() == 9


def test_a_small_run_goes_at_once_in_full_sends() -> None:
    """A run of at most ``start_burst`` items (3 full sends) goes at once, whatever the
    rate; anything more waits for the bucket."""
    pacer = Pacer(PacerSettings(initial_rate=40), now=0.0, items=60)
    for _ in range(3):
        assert pacer.batch_limit() == 20
        assert pacer.wait_time(20, 0.0) == 0.0
        pacer.take(20, 0.0)
    assert pacer.batch_limit() == 8  # 40/s x 0.2 s
    assert pacer.wait_time(8, 0.0) > 0


def test_a_larger_or_unknown_run_starts_slowly() -> None:
    for items in (61, None):
        pacer = Pacer(PacerSettings(initial_rate=40), now=0.0, items=items)
        assert pacer.batch_limit() == 8
        pacer.take(8, 0.0)
        assert pacer.wait_time(8, 0.0) > 0


def test_no_start_burst_after_a_429() -> None:
    pacer = Pacer(PacerSettings(initial_rate=40), now=0.0, items=50)
    _burst(pacer, 1, 20, 0.1)
    pacer.throttled(0.5, retry_after=0.5, sent_at=0.0)
    assert pacer.batch_limit() < 20
