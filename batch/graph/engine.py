"""Execute: move a stream of Graph write operations through ``$batch``, exactly once in effect.

:class:`BatchEngine` takes an iterable of :class:`Operation` and packs them into ``$batch``
requests of at most 20 items. It keeps several batches in flight on worker threads, matches
answers by item id (they come back in any order) and gives every operation one
:class:`Result`.

Prerequisites (e.g. ``PATCH usageLocation`` before ``assignLicense`` on the same user) go
without ``dependsOn``. Graph accepts only three shapes of it in one batch (all parallel, one
serial chain, or all on the same item) and answers anything else, such as several
prerequisite pairs beside plain items, 400 "Batch should be either fully sequential or fully
parallel" for the whole batch (graph-reference.md sections 1 and 11). So every batch is
fully parallel: an operation whose prerequisite is pending sends the prerequisite alone, as
one plain item; once it is acknowledged (or read back in place) the operation itself goes in
a later batch. The other legal way, each prerequisite and its operation as a two-item serial
chain in a batch of its own, was measured slower (``scripts/bench_prerequisites.py``: 2,000
operations, 30 % with a prerequisite, 150 ms a request, 1.5 s replication lag: 17.7 s and
186 requests against 20.3 s and 783; without lag 7.2 s against 17.1 s): it spends a request
on every such user, and requests, not the write quota, were the limit.

Rules, per item answer:

- 2xx: applied.
- 429: sent again no earlier than its own ``Retry-After`` (seconds, fractional, or an HTTP
  date; exponential backoff with jitter when absent). The whole request answered 429 or 503
  is retried the same way (nothing in it was carried out). Throttling also feeds the
  :class:`batch.graph.pacing.Pacer`, which keeps the send rate just under the quota.
- 500/502/503/507: sent again after a backoff, at most ``max_error_retries`` times.
- Outcome unknown (504, a reset or timed-out connection, an item missing from the answer, an
  unreadable answer, a whole request answered 500/502/504): the operation is *never* sent
  again before its ``verify`` hook has read the user's state back. Applied: outcome
  ``unknown-verified-applied``; not applied: sent again; no hook: outcome ``unknown``.
- A prerequisite's answer is handled the same way (429, 5xx, 504 read back with the
  prerequisite's own ``verify``, 401/403); while it is not in place the operation is not
  sent. If it failed for good, the operation fails with the prerequisite's error (status
  424, the prerequisite's result attached) without being sent.
- 401/403 on an item: the token is renewed once and the item sent again; if that does not
  cure it the run stops at once with :class:`batch.errors.PermissionDenied`.
- Other 4xx (no seats, bad usage location, conflicting plans, unknown SKU, user not found):
  a result, never retried, except Graph's replication lag (graph-reference.md section 10):
  "invalid usage location" just after this run set the usage location is retried after a
  growing delay, at most ``max_lag_retries`` times. Graph gives that case no code of its
  own (``Request_BadRequest``), so it is recognised by its message.

A breaker (:class:`batch.errors.GuardStopped`) stops the run when more than
``breaker_ratio`` of item attempts failed after at least ``breaker_min_attempts``. Microsoft's
provisioning service quarantines at 40 % after 5,000 failures; our runs are smaller, so the
minimum defaults to a tenth of the run (when its size is known), clamped to 20..5,000, and
to 100 for a stream of unknown length. Throttling (429) is pacing, not failure, and is not
counted; a prerequisite's answer counts as an attempt of its own.

When the run stops (breaker, permission, Ctrl-C) the batches in flight are finished and
recorded first; operations never sent end ``not-attempted``, those waiting for a retry end
``stopped``, those waiting for a read-back end ``unknown``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import queue
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from batch.errors import BatchError, GraphStatusError, GuardStopped, PermissionDenied
from batch.graph.answers import (
    BatchReply,
    backoff_delay,
    graph_error_fields,
    parse_retry_after,
    status_error,
)
from batch.graph.client import MAX_BATCH_ITEMS, GraphClient
from batch.graph.operations import Operation, Outcome, ReadBack, Result, Verifier, assign_license
from batch.graph.pacing import Pacer, PacerSettings

log = logging.getLogger(__name__)

_USAGE_LOCATION_LAG = "invalid usage location"
_TRANSIENT = {408, 500, 502, 503, 507}
_UNKNOWN = {504}


@dataclass
class EngineSettings:
    """Tuning of :class:`BatchEngine`."""

    max_concurrency: int = 10  #: batches in flight at most (4 cover 200 writes/s at 400 ms a batch)
    initial_concurrency: int = 4
    batch_size: int = MAX_BATCH_ITEMS
    max_throttle_retries: int = 50  #: per operation; throttling is normal, so generous
    max_error_retries: int = 3  #: per operation, for 5xx
    max_verify_attempts: int = 3
    max_lag_retries: int = 4
    lag_delay: float = 2.0  #: first wait after "invalid usage location", doubled each time
    verify_delay: float = 1.0  #: wait before a read-back (Entra replicates writes lazily)
    backoff_base: float = 1.0  #: first backoff when no Retry-After is given
    backoff_cap: float = 60.0
    max_retry_after: float = 300.0  #: a longer Retry-After ends the operation as exhausted
    breaker_ratio: float = 0.4
    breaker_min_attempts: int | None = None  #: None: a tenth of the run, clamped to 20..5,000
    request_timeout: tuple[float, float] | None = None
    pacer: PacerSettings = field(default_factory=PacerSettings)


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
    concurrency: int = 0
    elapsed: float = 0.0

    def snapshot(self) -> EngineStats:
        """A copy safe to hand to another thread."""
        copy = EngineStats(**{k: v for k, v in asdict(self).items() if k != "outcomes"})
        copy.outcomes = dict(self.outcomes)
        return copy


@dataclass(eq=False)
class _Unit:
    op: Operation
    seq: int
    not_before: float = 0.0
    prereq_done: bool = False
    prereq_result: Result | None = None
    pre_attempts: int = 0  #: times the prerequisite was sent
    attempts: int = 0  #: times the operation itself was sent
    main_sent: bool = False  #: the last send carried the operation (not its prerequisite alone)
    throttle_retries: int = 0
    error_retries: int = 0
    lag_retries: int = 0
    verify_attempts: int = 0
    sent_once: bool = False
    last: Result | None = None  # last answer seen, for the final result

    def __post_init__(self) -> None:
        if self.op.prerequisite is None:
            self.prereq_done = True

    def __lt__(self, other: _Unit) -> bool:
        return self.seq < other.seq


@dataclass
class _Batch:
    units: list[_Unit]
    items: list[dict[str, Any]]
    #: unit -> (prerequisite item id, operation item id); None for the one not sent
    ids: dict[_Unit, tuple[str | None, str | None]]


class BatchEngine:
    """Send operations through ``$batch`` with pacing, retries, verification and a breaker."""

    def __init__(
        self,
        client: GraphClient,
        settings: EngineSettings | None = None,
        *,
        on_sent: Callable[[Operation], None] | None = None,
        on_result: Callable[[Operation, Result], None] | None = None,
        on_progress: Callable[[EngineStats], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.settings = settings or EngineSettings()
        self.on_sent = on_sent
        self.on_result = on_result
        self.on_progress = on_progress
        self.stats = EngineStats()
        self.results: dict[str, Result] = {}
        self._clock = clock

    # -- public ----------------------------------------------------------------------------

    def run(self, operations: Iterable[Operation], *, total: int | None = None) -> EngineStats:
        """Execute every operation; return the counters. Results go to ``on_result``/``results``.

        :raises PermissionDenied: 401/403 that a token renewal did not cure.
        :raises GuardStopped: the failure breaker tripped.
        """
        s = self.settings
        self._source: Iterator[Operation] | None = iter(operations)
        self._seq = itertools.count()
        self._ready: list[tuple[float, int, _Unit]] = []
        self._verify: list[tuple[float, int, _Unit]] = []
        self._done_q: queue.Queue[tuple[str, Any, Any, float]] = queue.Queue()
        self._inflight = 0  # batches and read-backs not yet answered
        self._batches = 0  # batches in flight
        self._pacer_wake: float | None = None
        self._conc_growing = True
        self._concurrency = float(min(s.initial_concurrency, s.max_concurrency))
        self._stop: BatchError | None = None
        self._item_renewed = False
        self._min_attempts = s.breaker_min_attempts or (
            min(5000, max(20, math.ceil(total / 10))) if total else 100
        )
        started = self._clock()
        self._pacer = Pacer(s.pacer, now=started)
        self._started = started
        lookahead = s.batch_size * s.max_concurrency * 2
        workers = ThreadPoolExecutor(max_workers=s.max_concurrency, thread_name_prefix="batch")
        readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify")
        try:
            while True:
                now = self._clock()
                if self._stop is None:
                    self._fill(lookahead, now)
                    self._start_verifications(readers, now)
                    self._dispatch(workers, now)
                if self._inflight == 0 and (
                    self._stop is not None
                    or (self._source is None and not self._ready and not self._verify)
                ):
                    break
                self._wait(self._next_wake(now))
        except KeyboardInterrupt:
            self._stop = self._stop or BatchError("Interrupted.")
            while self._inflight:
                self._wait(1.0)
            raise
        finally:
            workers.shutdown(wait=True)
            readers.shutdown(wait=True)
            self._update_stats()
        if self._stop is not None:
            self._abandon()
            raise self._stop
        return self.stats.snapshot()

    # -- the dispatch loop -----------------------------------------------------------------

    def _fill(self, lookahead: int, now: float) -> None:
        while self._source is not None and len(self._ready) < lookahead:
            try:
                op = next(self._source)
            except StopIteration:
                self._source = None
                break
            unit = _Unit(op, next(self._seq), not_before=now)
            self.stats.operations += 1
            heapq.heappush(self._ready, (unit.not_before, unit.seq, unit))

    def _dispatch(self, workers: ThreadPoolExecutor, now: float) -> None:
        self._pacer.tick(now)
        while self._batches < max(1, int(self._concurrency)) and self._ready:
            if self._ready[0][0] > now:
                return
            batch = self._build(now)
            if batch is None:
                return
            wait = self._pacer.wait_time(len(batch.items), now)
            if wait > 0:
                for unit in batch.units:
                    heapq.heappush(self._ready, (unit.not_before, unit.seq, unit))
                self._pacer_wake = now + wait
                return
            self._pacer.take(len(batch.items), now)
            for unit in batch.units:
                self._note_sent(unit, batch.ids[unit])
            self.stats.requests += 1
            self.stats.items_sent += len(batch.items)
            self._inflight += 1
            self._batches += 1
            workers.submit(self._post, batch)

    def _note_sent(self, unit: _Unit, ids: tuple[str | None, str | None]) -> None:
        pre_id, main_id = ids
        if pre_id is not None:
            if unit.pre_attempts:
                self.stats.retries += 1
            unit.pre_attempts += 1
        unit.main_sent = main_id is not None
        if main_id is None:
            return
        unit.attempts += 1
        if unit.sent_once:
            self.stats.retries += 1
        unit.sent_once = True
        if self.on_sent is not None:
            self.on_sent(unit.op)

    def _build(self, now: float) -> _Batch | None:
        """The next batch, fully parallel: one item per unit, its prerequisite while pending."""
        units: list[_Unit] = []
        items: list[dict[str, Any]] = []
        ids: dict[_Unit, tuple[str | None, str | None]] = {}
        while self._ready and self._ready[0][0] <= now and len(items) < self.settings.batch_size:
            unit = heapq.heappop(self._ready)[2]
            item_id = str(len(items) + 1)
            if unit.prereq_done:
                items.append(unit.op.item(item_id))
                ids[unit] = (None, item_id)
            else:
                assert unit.op.prerequisite is not None
                items.append(unit.op.prerequisite.item(item_id))
                ids[unit] = (item_id, None)
            units.append(unit)
        return _Batch(units, items, ids) if units else None

    def _post(self, batch: _Batch) -> None:
        try:
            reply = self.client.send_batch(batch.items, timeout=self.settings.request_timeout)
            self._done_q.put(("batch", batch, reply, self._clock()))
        except BaseException as exc:  # handed to the dispatch loop, which decides
            self._done_q.put(("batch", batch, exc, self._clock()))

    def _shrink(self) -> None:
        """Halve the batches in flight after a sign of strain (no answer, 429/5xx on the whole)."""
        self._concurrency = max(1.0, self._concurrency / 2)
        self._conc_growing = False

    def _next_wake(self, now: float) -> float:
        candidates = [1.0]
        # With every batch slot taken only a completion can let more go: wait for it rather
        # than wake for operations that are due (that busy loop would starve the workers).
        has_slot = self._batches < max(1, int(self._concurrency))
        if self._ready and has_slot and self._stop is None:
            candidates.append(self._ready[0][0] - now)
        if self._pacer_wake is not None:
            if has_slot:
                candidates.append(self._pacer_wake - now)
            self._pacer_wake = None
        if self._verify and self._stop is None:
            candidates.append(self._verify[0][0] - now)
        return max(0.002, min(candidates))

    def _wait(self, timeout: float) -> None:
        try:
            kind, subject, answer, at = self._done_q.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            self._inflight -= 1
            if kind == "batch":
                self._batches -= 1
                self._on_batch(subject, answer, at)
            else:
                self._on_verified(subject, answer, at)
            self._check_breaker()
            try:
                kind, subject, answer, at = self._done_q.get_nowait()
            except queue.Empty:
                break
        self._update_stats()
        if self.on_progress is not None:
            self.on_progress(self.stats.snapshot())

    # -- answers ---------------------------------------------------------------------------

    def _on_batch(self, batch: _Batch, reply: BatchReply | BaseException, at: float) -> None:
        if isinstance(reply, BaseException):
            self._on_request_error(batch, reply, at)
            return
        self.stats.resource_units += _float(reply.headers.get("x-ms-resource-unit"))
        self._limit_feedback(reply.headers, at)
        if reply.status is None:
            self._on_no_answer(batch, reply, at)
        elif reply.status in (429, 503):
            self._on_request_refused(batch, reply, at)
        elif reply.status >= 500 or reply.responses is None:
            # Some items may have been carried out: read back before anything is resent.
            self._shrink()
            for unit in batch.units:
                self._unknown(unit, at, status=reply.status, request_id=reply.request_id)
        elif reply.status >= 400:
            error = status_error(
                "POST", f"{self.client.graph_url}/$batch", reply.status, reply.body, reply.headers
            )
            for unit in batch.units:
                self._count_attempt(failed=True)
                self._finish(unit, self._from_error(unit, error, Outcome.FAILED))
        else:
            self._on_items(batch, reply.responses, at)

    def _on_request_error(self, batch: _Batch, error: BaseException, at: float) -> None:
        if isinstance(error, PermissionDenied):
            self._halt(error)
            for unit in batch.units:
                self._finish(unit, self._from_error(unit, error, Outcome.FAILED))
            return
        if not isinstance(error, BatchError):
            log.error("$batch worker failed", exc_info=error)
            error = BatchError(f"internal error: {type(error).__name__}: {error}")
        for unit in batch.units:
            self._unknown(unit, at, message=str(error))

    def _on_no_answer(self, batch: _Batch, reply: BatchReply, at: float) -> None:
        self._shrink()
        message = str(reply.error) if reply.error else "no answer"
        for unit in batch.units:
            self._count_attempt(failed=True)
            if reply.delivered:
                self._unknown(unit, at, message=message)
            else:
                self._retry_error(unit, at, None, message=message)

    def _on_request_refused(self, batch: _Batch, reply: BatchReply, at: float) -> None:
        """The whole request answered 429 or 503: nothing in it was carried out."""
        delay = parse_retry_after(reply.headers.get("Retry-After"))
        self._shrink()
        if reply.status == 429:
            self.stats.throttled_requests += 1
            self.stats.throttled_items += len(batch.items)
            self._pacer.throttled(at)
        if delay is not None:
            self._pacer.hold(at + delay)
        for unit in batch.units:
            if reply.status == 429:
                self._retry_throttled(unit, at, delay, reply.request_id)
            else:
                self._retry_error(unit, at, delay, status=503, request_id=reply.request_id)

    def _on_items(self, batch: _Batch, responses: dict[str, Any], at: float) -> None:
        s = self.settings
        # Grow by one per answered batch until the first sign of strain, then by 1/c.
        step = 1.0 if self._conc_growing else 1 / self._concurrency
        self._concurrency = min(float(s.max_concurrency), self._concurrency + step)
        accepted = 0
        throttled_delays: list[float] = []
        for answer in responses.values():
            headers = _lower(answer.get("headers"))
            self.stats.resource_units += _float(headers.get("x-ms-resource-unit"))
            self._limit_feedback(headers, at)
            status = _status(answer)
            if 200 <= status < 300:
                accepted += 1
            elif status == 429:
                self.stats.throttled_items += 1
                delay = parse_retry_after(headers.get("retry-after"))
                if delay is not None:
                    throttled_delays.append(delay)
        for unit in batch.units:
            self._on_unit_answer(unit, batch.ids[unit], responses, at)
        self._pacer.accepted(accepted, at)
        if any(_status(a) == 429 for a in responses.values()):
            self._pacer.throttled(at)
            if throttled_delays:
                self._pacer.hold(at + min(throttled_delays))

    def _on_unit_answer(
        self,
        unit: _Unit,
        ids: tuple[str | None, str | None],
        responses: Mapping[str, Any],
        at: float,
    ) -> None:
        pre_id, main_id = ids
        if pre_id is not None and not self._on_prerequisite(unit, responses.get(pre_id), at):
            return
        if main_id is None:  # the prerequisite alone went: the operation goes in a later batch
            self._requeue(unit, at)
            return
        self._on_operation(unit, responses.get(main_id), at)

    def _on_prerequisite(self, unit: _Unit, answer: dict[str, Any] | None, at: float) -> bool:
        """Handle the prerequisite's answer; True when it is in place and the unit goes on."""
        pre = unit.op.prerequisite
        assert pre is not None
        if answer is None:
            self._count_attempt(failed=True)
            self._unknown(unit, at, message="the prerequisite is missing from the answer")
            return False
        result = self._answer_result(pre.key, answer, unit.pre_attempts)
        unit.prereq_result = result
        status = _status(answer)
        if 200 <= status < 300:
            unit.prereq_done = True
            result.outcome = Outcome.APPLIED
            self._count_attempt(failed=False)
            return True
        unit.last = replace(result, key=unit.op.key)
        if status == 429:
            self._retry_throttled(unit, at, _retry_after(answer), result.request_id)
            return False
        self._count_attempt(failed=True)
        if status in (401, 403):
            self._auth_failure(unit, pre, answer, at)
        elif status in _TRANSIENT:
            self._retry_error(
                unit, at, _retry_after(answer), status=status, request_id=result.request_id
            )
        elif status in _UNKNOWN:
            self._unknown(unit, at, status=status, request_id=result.request_id)
        else:
            self._fail_prerequisite(unit, result)
        return False

    def _fail_prerequisite(self, unit: _Unit, pre_result: Result) -> None:
        """The prerequisite failed for good: so does the operation, with its error."""
        pre_result.outcome = Outcome.FAILED
        result = Result(
            unit.op.key,
            Outcome.FAILED,
            status=424,
            code=pre_result.code,
            message=f"prerequisite failed: {pre_result.message}",
            request_id=pre_result.request_id,
            attempts=unit.attempts,
            prerequisite=pre_result,
        )
        self._finish(unit, result)

    def _on_operation(self, unit: _Unit, answer: dict[str, Any] | None, at: float) -> None:
        op = unit.op
        if answer is None:
            self._count_attempt(failed=True)
            self._unknown(unit, at, message="the operation is missing from the answer")
            return
        status = _status(answer)
        result = self._answer_result(op.key, answer, unit.attempts)
        unit.last = result
        if 200 <= status < 300:
            self._count_attempt(failed=False)
            result.outcome = Outcome.APPLIED
            self._finish(unit, result)
            return
        if status == 429:
            self._retry_throttled(unit, at, _retry_after(answer), result.request_id)
            return
        self._count_attempt(failed=True)
        if status in (401, 403):
            self._auth_failure(unit, op, answer, at)
        elif status in _TRANSIENT:
            self._retry_error(
                unit, at, _retry_after(answer), status=status, request_id=result.request_id
            )
        elif status in _UNKNOWN:
            self._unknown(unit, at, status=status, request_id=result.request_id)
        elif self._is_lag(unit, result) and unit.lag_retries < self.settings.max_lag_retries:
            unit.lag_retries += 1
            self.stats.lag_retries += 1
            delay = self.settings.lag_delay * (2 ** (unit.lag_retries - 1))
            log.debug("%s: usage location not replicated yet; retrying in %.1f s", op.key, delay)
            self._requeue(unit, at + delay)
        else:
            result.outcome = Outcome.FAILED
            self._finish(unit, result)

    def _is_lag(self, unit: _Unit, result: Result) -> bool:
        set_here = unit.op.usage_location_set or (
            unit.op.prerequisite is not None and unit.prereq_done
        )
        return (
            set_here
            and result.status == 400
            and _USAGE_LOCATION_LAG in (result.message or "").lower()
        )

    # -- retries ---------------------------------------------------------------------------

    def _retry_throttled(
        self, unit: _Unit, at: float, delay: float | None, request_id: str | None
    ) -> None:
        s = self.settings
        unit.throttle_retries += 1
        if delay is None:
            delay = backoff_delay(unit.throttle_retries, s.backoff_base, s.backoff_cap)
        if unit.throttle_retries > s.max_throttle_retries or delay > s.max_retry_after:
            self._finish(
                unit,
                Result(
                    unit.op.key,
                    Outcome.EXHAUSTED,
                    status=429,
                    code="TooManyRequests",
                    message=f"still throttled after {unit.throttle_retries} tries "
                    f"(Retry-After {delay:.1f} s)",
                    request_id=request_id,
                    attempts=unit.attempts,
                    prerequisite=unit.prereq_result,
                ),
            )
            return
        self._requeue(unit, at + delay)

    def _retry_error(
        self,
        unit: _Unit,
        at: float,
        delay: float | None,
        *,
        status: int | None = None,
        request_id: str | None = None,
        message: str | None = None,
    ) -> None:
        s = self.settings
        unit.error_retries += 1
        if unit.error_retries > s.max_error_retries:
            last = unit.last
            self._finish(
                unit,
                Result(
                    unit.op.key,
                    Outcome.EXHAUSTED,
                    status=status,
                    code=last.code if last else None,
                    message=message
                    or (last.message if last else None)
                    or f"failed {unit.error_retries} times (status {status})",
                    request_id=request_id,
                    attempts=unit.attempts,
                    body=last.body if last else None,
                    prerequisite=unit.prereq_result,
                ),
            )
            return
        if delay is None:
            delay = backoff_delay(unit.error_retries, s.backoff_base, s.backoff_cap)
        self._requeue(unit, at + min(delay, s.max_retry_after))

    def _requeue(self, unit: _Unit, not_before: float) -> None:
        unit.not_before = not_before
        heapq.heappush(self._ready, (not_before, unit.seq, unit))

    def _auth_failure(
        self, unit: _Unit, sent: Operation, answer: dict[str, Any], at: float
    ) -> None:
        if not self._item_renewed:
            # The token may predate a permission grant or have been revoked: renew once.
            self._item_renewed = True
            self.stats.token_renewals += 1
            try:
                self.client.tokens.renew(self.client.tokens.token())
            except BatchError as exc:
                self._halt(exc)
                self._finish(unit, self._from_error(unit, exc, Outcome.FAILED))
                return
            self._requeue(unit, at)
            return
        error = status_error(
            sent.method,
            sent.url,
            _status(answer),
            answer.get("body"),
            _lower(answer.get("headers")),
        )
        self._halt(error)
        self._finish(unit, self._from_error(unit, error, Outcome.FAILED))

    # -- unknown outcomes ------------------------------------------------------------------

    def _unknown(
        self,
        unit: _Unit,
        at: float,
        *,
        status: int | None = None,
        request_id: str | None = None,
        message: str | None = None,
    ) -> None:
        if status is not None:
            self._count_attempt(failed=True)
        what = "outcome" if unit.main_sent else "the prerequisite's outcome"
        last = Result(
            unit.op.key,
            Outcome.UNKNOWN,
            status=status,
            request_id=request_id,
            message=message or f"{what} unknown (status {status})",
            attempts=unit.attempts,
            prerequisite=unit.prereq_result,
        )
        unit.last = last
        if _verifier(unit) is None:
            if unit.main_sent:
                self._finish(unit, last)
            else:  # the prerequisite alone, idempotent (a PATCH): send it again
                self._retry_error(unit, at, None, status=status, request_id=request_id)
            return
        due = at + self.settings.verify_delay
        heapq.heappush(self._verify, (due, unit.seq, unit))

    def _start_verifications(self, readers: ThreadPoolExecutor, now: float) -> None:
        while self._verify and self._verify[0][0] <= now:
            _, _, unit = heapq.heappop(self._verify)
            unit.verify_attempts += 1
            self.stats.verifications += 1
            self._inflight += 1
            readers.submit(self._read_back, unit)

    def _read_back(self, unit: _Unit) -> None:
        verify = _verifier(unit)
        try:
            assert verify is not None
            answer: Any = bool(verify(self.client))
        except BaseException as exc:
            answer = exc
        self._done_q.put(("verify", unit, answer, self._clock()))

    def _on_verified(self, unit: _Unit, answer: Any, at: float) -> None:
        s = self.settings
        last = unit.last or Result(unit.op.key, Outcome.UNKNOWN)
        if isinstance(answer, BaseException):
            if isinstance(answer, PermissionDenied):
                self._halt(answer)
                self._finish(unit, last)
                return
            log.debug("%s: read-back failed: %s", unit.op.key, answer)
            if unit.verify_attempts < s.max_verify_attempts and self._stop is None:
                due = at + backoff_delay(unit.verify_attempts, s.backoff_base, s.backoff_cap)
                heapq.heappush(self._verify, (due, unit.seq, unit))
            else:
                last.message = f"{last.message}; the read-back failed: {answer}"
                self._finish(unit, last)
            return
        if answer and unit.main_sent:
            last.outcome = Outcome.VERIFIED_APPLIED
            last.verified = True
            last.prerequisite = unit.prereq_result
            self._finish(unit, last)
            return
        if answer:  # only the prerequisite went, and it is in place: the operation is next
            self._prerequisite_verified(unit)
            self._requeue(unit, at)
            return
        # Read back and not in place: safe to send again, within the error budget.
        unit.error_retries += 1
        if unit.error_retries > s.max_error_retries or self._stop is not None:
            last.outcome = Outcome.VERIFIED_NOT_APPLIED
            last.verified = False
            self._finish(unit, last)
            return
        self._requeue(unit, at)

    def _prerequisite_verified(self, unit: _Unit) -> None:
        unit.prereq_done = True
        if unit.op.prerequisite is not None:
            unit.prereq_result = Result(
                unit.op.prerequisite.key,
                Outcome.VERIFIED_APPLIED,
                verified=True,
                attempts=unit.pre_attempts,
            )

    # -- endings ---------------------------------------------------------------------------

    def _finish(self, unit: _Unit, result: Result) -> None:
        result.attempts = unit.attempts
        if result.prerequisite is None:
            result.prerequisite = unit.prereq_result
        self.results[unit.op.key] = result
        self.stats.finished += 1
        name = result.outcome.value
        self.stats.outcomes[name] = self.stats.outcomes.get(name, 0) + 1
        if self.on_result is not None:
            self.on_result(unit.op, result)

    def _halt(self, error: BatchError) -> None:
        if self._stop is None:
            log.error("stopping the run: %s", error)
            self._stop = error

    def _abandon(self) -> None:
        """Give every operation not finished a result after a stop."""
        for _, _, unit in sorted(self._ready):
            outcome = Outcome.STOPPED if unit.sent_once else Outcome.NOT_ATTEMPTED
            last = unit.last
            self._finish(
                unit,
                Result(
                    unit.op.key,
                    outcome,
                    status=last.status if last else None,
                    code=last.code if last else None,
                    message=f"the run stopped: {self._stop}",
                    attempts=unit.attempts,
                ),
            )
        self._ready = []
        for _, _, unit in sorted(self._verify):
            last = unit.last or Result(unit.op.key, Outcome.UNKNOWN)
            last.message = f"{last.message}; the run stopped before the read-back"
            self._finish(unit, last)
        self._verify = []
        if self._source is not None:
            for op in self._source:
                unit = _Unit(op, next(self._seq))
                self.stats.operations += 1
                self._finish(
                    unit,
                    Result(op.key, Outcome.NOT_ATTEMPTED, message=f"the run stopped: {self._stop}"),
                )
            self._source = None
        self._update_stats()

    def _count_attempt(self, *, failed: bool) -> None:
        self.stats.attempts += 1
        if failed:
            self.stats.failures += 1

    def _check_breaker(self) -> None:
        st, s = self.stats, self.settings
        if (
            self._stop is None
            and st.attempts >= self._min_attempts
            and (st.failures / st.attempts > s.breaker_ratio)
        ):
            self._halt(
                GuardStopped(
                    f"Stopped: {st.failures} of {st.attempts} attempts failed "
                    f"(over {s.breaker_ratio:.0%} after at least {self._min_attempts}).",
                    hint="Read the failed rows in the report, fix the cause, then resume the run.",
                )
            )

    def _limit_feedback(self, headers: Mapping[str, str], at: float) -> None:
        value = headers.get("x-ms-throttle-limit-percentage")
        if value:
            self._pacer.limit_percentage(_float(value), at)

    def _answer_result(self, key: str, answer: dict[str, Any], attempts: int) -> Result:
        status = _status(answer)
        body = answer.get("body")
        code, message, inner_id = graph_error_fields(body) if status >= 400 else (None, None, None)
        headers = _lower(answer.get("headers"))
        return Result(
            key,
            Outcome.UNKNOWN,
            status=status,
            code=code,
            message=message,
            request_id=headers.get("request-id") or inner_id,
            attempts=attempts,
            body=body,
        )

    def _from_error(self, unit: _Unit, error: BatchError, outcome: Outcome) -> Result:
        if isinstance(error, GraphStatusError):
            return Result(
                unit.op.key,
                outcome,
                status=error.status,
                code=error.code,
                message=error.message,
                request_id=error.request_id,
                attempts=unit.attempts,
                body=error.response,
            )
        return Result(unit.op.key, outcome, message=str(error), attempts=unit.attempts)

    def _update_stats(self) -> None:
        self.stats.rate = round(self._pacer.rate, 1) if hasattr(self, "_pacer") else 0.0
        self.stats.concurrency = int(getattr(self, "_concurrency", 0))
        self.stats.token_renewals = max(self.stats.token_renewals, self.client.stats.token_renewals)
        if hasattr(self, "_started"):
            self.stats.elapsed = self._clock() - self._started


def run_operations(
    client: GraphClient,
    operations: Iterable[Operation],
    *,
    settings: EngineSettings | None = None,
    total: int | None = None,
    on_sent: Callable[[Operation], None] | None = None,
    on_result: Callable[[Operation, Result], None] | None = None,
    on_progress: Callable[[EngineStats], None] | None = None,
) -> tuple[dict[str, Result], EngineStats]:
    """Run ``operations`` through a new :class:`BatchEngine`; return results by key and counters."""
    engine = BatchEngine(
        client, settings, on_sent=on_sent, on_result=on_result, on_progress=on_progress
    )
    stats = engine.run(operations, total=total)
    return engine.results, stats


def _verifier(unit: _Unit) -> Verifier | None:
    """The read-back for what the unit's last send carried: the operation or its prerequisite."""
    if unit.main_sent:
        return unit.op.verify
    return unit.op.prerequisite.verify if unit.op.prerequisite is not None else None


def _status(answer: Mapping[str, Any]) -> int:
    try:
        return int(answer.get("status", 0))
    except (TypeError, ValueError):
        return 0


def _retry_after(answer: Mapping[str, Any]) -> float | None:
    return parse_retry_after(_lower(answer.get("headers")).get("retry-after"))


def _lower(headers: Any) -> dict[str, str]:
    if not isinstance(headers, Mapping):
        return {}
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _float(value: Any) -> float:
    try:
        return float(value) if value else 0.0
    except (TypeError, ValueError):
        return 0.0


__all__ = [
    "BatchEngine",
    "EngineSettings",
    "EngineStats",
    "Operation",
    "Outcome",
    "ReadBack",
    "Result",
    "Verifier",
    "assign_license",
    "run_operations",
]
