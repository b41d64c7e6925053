"""The ``$batch`` engine: a stream of Graph writes sent in batches, each applied once in effect.

:class:`BatchEngine` is the scheduler: it takes an iterable of :class:`Operation`, packs
them into ``$batch`` requests of at most 20 items, keeps several batches in flight on worker
threads (as many as answers allow, at the rate the :class:`batch.graph.pacing.Pacer` allows),
matches answers by item id (they come back in any order) and gives every operation one
:class:`Result`.

Prerequisites (e.g. ``PATCH usageLocation`` before ``assignLicense`` on the same user) go
without ``dependsOn``, which Graph takes in only three shapes per batch (graph-reference.md
sections 1 and 11): every batch is fully parallel, a pending prerequisite goes alone as a
plain item, and its operation in a later batch once it is acknowledged or read back in
place (:mod:`batch.graph.operations` has the measurements behind that choice).

Every answer is judged by the pure functions of :mod:`batch.graph.policy`, whose docstring
states the rules (429, 5xx, unknown outcomes read back before anything is resent, 401/403,
replication lag, prerequisites, the failure breaker); the engine applies their decisions.

When the run stops (breaker, permission, Ctrl-C) the batches in flight are finished and
recorded first; operations never sent end ``not-attempted``, those waiting for a retry end
``stopped``, those waiting for a read-back end ``unknown``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Any

from batch.errors import BatchError, PermissionDenied
from batch.graph import policy
from batch.graph.answers import BatchReply, header_float, item_status, lower_keys, parse_retry_after
from batch.graph.client import GraphClient
from batch.graph.operations import Operation, Outcome, ReadBack, Result, Verifier, assign_license
from batch.graph.pacing import Pacer, reported_percentage
from batch.graph.policy import Decision, EngineSettings, Unit
from batch.graph.stats import EngineStats

log = logging.getLogger(__name__)


@dataclass
class _Batch:
    units: list[Unit]
    items: list[dict[str, Any]]
    #: unit -> (prerequisite item id, operation item id); None for the one not sent
    ids: dict[Unit, tuple[str | None, str | None]]
    sent_at: float = 0.0


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
        grouped: Callable[[], AbstractContextManager[Any]] = nullcontext,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.settings = settings or EngineSettings()
        self.on_sent = on_sent
        self.on_result = on_result
        #: wraps the ``on_sent`` calls of one batch, and the ``on_result`` calls of the
        #: answers handled together (a journal transaction: one sync to disk for them)
        self.grouped = grouped
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
        self._ready: list[tuple[float, int, Unit]] = []
        self._verify: list[tuple[float, int, Unit]] = []
        self._done_q: queue.Queue[tuple[str, Any, Any, float]] = queue.Queue()
        self._inflight = 0  # batches and read-backs not yet answered
        self._batches = 0  # batches in flight
        self._pacer_wake: float | None = None
        self._conc_growing = True
        self._concurrency = float(min(s.initial_concurrency, s.max_concurrency))
        self._stop: BatchError | None = None
        self._renewals = policy.Renewals()
        self._min_attempts = policy.breaker_min_attempts(s, total)
        started = self._clock()
        self._pacer = Pacer(s.pacer, now=started, items=total)
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
            unit = Unit(op, next(self._seq), not_before=now)
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
            batch.sent_at = now
            with self.grouped():
                for unit in batch.units:
                    self._note_sent(unit, batch.ids[unit])
                    self._renewals.sent(unit.seq)
            self.stats.requests += 1
            self.stats.items_sent += len(batch.items)
            self._inflight += 1
            self._batches += 1
            workers.submit(self._post, batch)

    def _note_sent(self, unit: Unit, ids: tuple[str | None, str | None]) -> None:
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
        units: list[Unit] = []
        items: list[dict[str, Any]] = []
        ids: dict[Unit, tuple[str | None, str | None]] = {}
        size = min(self.settings.batch_size, self._pacer.batch_limit())
        while self._ready and self._ready[0][0] <= now and len(items) < size:
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
        with self.grouped():
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
            self._pacer.answered(len(batch.items), 0, at, sent_at=batch.sent_at)
            self._on_request_error(batch, reply, at)
            return
        self.stats.resource_units += header_float(reply.headers.get("x-ms-resource-unit"))
        kind = policy.request_answer(reply)
        if kind is policy.RequestAnswer.ITEMS and reply.responses is not None:
            self._on_items(batch, reply.responses, at, reported_percentage(reply.headers))
            return
        self._pacer.answered(
            len(batch.items),
            0,
            at,
            sent_at=batch.sent_at,
            limit_percentage=reported_percentage(reply.headers),
        )
        if kind is not policy.RequestAnswer.FAILED:
            self._shrink()  # a sign of strain: no answer, 429/5xx on the whole
        if kind is policy.RequestAnswer.REFUSED:  # nothing in it was carried out
            delay = parse_retry_after(reply.headers.get("Retry-After"))
            if reply.status == 429:
                self.stats.throttled_requests += 1
                self.stats.throttled_items += len(batch.items)
                self._pacer.throttled(at, retry_after=delay, sent_at=batch.sent_at)
            if delay is not None:
                self._pacer.hold(at + delay)
        url = f"{self.client.graph_url}/$batch"
        if kind is policy.RequestAnswer.NO_ANSWER:  # one event on the wire, not one per item
            self._count_attempt(failed=True)
        for unit in batch.units:
            if kind is policy.RequestAnswer.FAILED:
                self._count_attempt(failed=True)
            decision = policy.request_decision(unit, reply, self.settings, url=url)
            assert decision is not None
            self._apply(unit, decision, at)

    def _on_request_error(self, batch: _Batch, error: BaseException, at: float) -> None:
        if isinstance(error, PermissionDenied):
            for unit in batch.units:
                self._apply(unit, policy.Halt(error), at)
            return
        if not isinstance(error, BatchError):
            log.error("$batch worker failed", exc_info=error)
            error = BatchError(f"internal error: {type(error).__name__}: {error}")
        for unit in batch.units:
            self._unknown(unit, at, message=str(error))

    def _on_items(
        self, batch: _Batch, responses: dict[str, Any], at: float, percentage: float | None
    ) -> None:
        s = self.settings
        # Grow by one per answered batch until the first sign of strain, then by 1/c.
        step = 1.0 if self._conc_growing else 1 / self._concurrency
        self._concurrency = min(float(s.max_concurrency), self._concurrency + step)
        accepted = 0
        throttled_delays: list[float] = []
        for answer in responses.values():
            headers = lower_keys(answer.get("headers"))
            self.stats.resource_units += header_float(headers.get("x-ms-resource-unit"))
            percentage = max(percentage or 0.0, reported_percentage(headers) or 0.0) or None
            status = item_status(answer)
            if 200 <= status < 300:
                accepted += 1
            elif status == 429:
                self.stats.throttled_items += 1
                delay = parse_retry_after(headers.get("retry-after"))
                if delay is not None:
                    throttled_delays.append(delay)
        for unit in batch.units:
            self._on_unit_answer(unit, batch.ids[unit], responses, at)
        self._pacer.answered(
            len(batch.items), accepted, at, sent_at=batch.sent_at, limit_percentage=percentage
        )
        if any(item_status(a) == 429 for a in responses.values()):
            # the longest Retry-After is the first item refused: the closest to the send
            longest = max(throttled_delays) if throttled_delays else None
            self._pacer.throttled(at, retry_after=longest, sent_at=batch.sent_at)
            if throttled_delays:
                self._pacer.hold(at + min(throttled_delays))

    def _on_unit_answer(
        self,
        unit: Unit,
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

    def _on_prerequisite(self, unit: Unit, answer: dict[str, Any] | None, at: float) -> bool:
        """Handle the prerequisite's answer; True when it is in place and the unit goes on."""
        pre = unit.op.prerequisite
        assert pre is not None
        if answer is None:
            self._count_attempt(failed=True)
            self._unknown(unit, at, message="the prerequisite is missing from the answer")
            return False
        result = policy.answer_result(pre.key, answer, unit.pre_attempts)
        unit.prereq_result = result
        renewed = self._renewals.answered(unit.seq, result.status)
        decision = policy.prerequisite_answer(unit, answer, result, self.settings, renewed=renewed)
        self._count_answer(result, decision)
        if isinstance(decision, policy.Proceed):
            unit.prereq_done = True
            result.outcome = Outcome.APPLIED
            return True
        unit.last = replace(result, key=unit.op.key)
        self._apply(unit, decision, at)
        return False

    def _on_operation(self, unit: Unit, answer: dict[str, Any] | None, at: float) -> None:
        if answer is None:
            self._count_attempt(failed=True)
            self._unknown(unit, at, message="the operation is missing from the answer")
            return
        result = policy.answer_result(unit.op.key, answer, unit.attempts)
        unit.last = result
        renewed = self._renewals.answered(unit.seq, result.status)
        decision = policy.operation_answer(unit, answer, result, self.settings, renewed=renewed)
        self._count_answer(result, decision)
        self._apply(unit, decision, at)

    # -- applying decisions ----------------------------------------------------------------

    def _apply(self, unit: Unit, decision: Decision, at: float) -> None:
        """Carry out what the policy decided for ``unit`` on an answer that came at ``at``."""
        if isinstance(decision, policy.Retry):
            self._spend(unit, decision)
            self._requeue(unit, at + decision.after)
        elif isinstance(decision, policy.Finish):
            self._finish(unit, decision.result)
        elif isinstance(decision, policy.Unknown):
            self._unknown(
                unit,
                at,
                status=decision.status,
                request_id=decision.request_id,
                message=decision.message,
            )
        elif isinstance(decision, policy.Verify):
            heapq.heappush(self._verify, (at + decision.after, unit.seq, unit))
        elif isinstance(decision, policy.RenewToken):
            self._renew_token(unit, at)
        elif isinstance(decision, policy.Halt):
            self._halt(decision.error)
            result = decision.result or policy.error_result(unit, decision.error, Outcome.FAILED)
            self._finish(unit, result)
        else:  # Proceed after a read-back: the prerequisite is in place, the operation is next
            self._prerequisite_verified(unit)
            self._requeue(unit, at)

    def _spend(self, unit: Unit, retry: policy.Retry) -> None:
        if retry.kind is policy.RetryKind.THROTTLED:
            unit.throttle_retries += 1
        elif retry.kind is policy.RetryKind.ERROR:
            unit.error_retries += 1
        else:
            unit.lag_retries += 1
            self.stats.lag_retries += 1
            log.debug(
                "%s: usage location not replicated yet; retrying in %.1f s",
                unit.op.key,
                retry.after,
            )

    def _requeue(self, unit: Unit, not_before: float) -> None:
        unit.not_before = not_before
        heapq.heappush(self._ready, (not_before, unit.seq, unit))

    def _renew_token(self, unit: Unit, at: float) -> None:
        if self._renewals.stale(unit.seq):
            return self._requeue(unit, at)  # it carried a token renewed since: send it again
        self._renewals.renew()  # the token predates a grant, was revoked, or expired
        self.stats.token_renewals += 1
        try:
            self.client.tokens.renew(self.client.tokens.token())
        except BatchError as exc:
            self._apply(unit, policy.Halt(exc), at)
            return
        self._requeue(unit, at)

    # -- unknown outcomes ------------------------------------------------------------------

    def _unknown(
        self,
        unit: Unit,
        at: float,
        *,
        status: int | None = None,
        request_id: str | None = None,
        message: str | None = None,
    ) -> None:
        if status is not None:
            self._count_attempt(failed=True)
        unit.last = policy.unknown_result(
            unit, status=status, request_id=request_id, message=message
        )
        self._apply(unit, policy.unknown_outcome(unit, self.settings), at)

    def _start_verifications(self, readers: ThreadPoolExecutor, now: float) -> None:
        while self._verify and self._verify[0][0] <= now:
            _, _, unit = heapq.heappop(self._verify)
            unit.verify_attempts += 1
            self.stats.verifications += 1
            self._inflight += 1
            readers.submit(self._read_back, unit)

    def _read_back(self, unit: Unit) -> None:
        verify = policy.verifier(unit)
        try:
            assert verify is not None
            answer: Any = bool(verify(self.client))
        except BaseException as exc:
            answer = exc
        self._done_q.put(("verify", unit, answer, self._clock()))

    def _on_verified(self, unit: Unit, answer: bool | BaseException, at: float) -> None:
        if isinstance(answer, BaseException) and not isinstance(answer, PermissionDenied):
            log.debug("%s: read-back failed: %s", unit.op.key, answer)
        stopping = self._stop is not None
        self._apply(
            unit, policy.read_back_answer(unit, answer, self.settings, stopping=stopping), at
        )

    def _prerequisite_verified(self, unit: Unit) -> None:
        unit.prereq_done = True
        unit.prereq_result = policy.verified_prerequisite(unit) or unit.prereq_result

    # -- endings ---------------------------------------------------------------------------

    def _finish(self, unit: Unit, result: Result) -> None:
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
            self._finish(unit, policy.stopped_result(unit, self._stop))
        self._ready = []
        for _, _, unit in sorted(self._verify):
            self._finish(unit, policy.stopped_result(unit, self._stop, reading_back=True))
        self._verify = []
        if self._source is not None:
            for op in self._source:
                unit = Unit(op, next(self._seq))
                self.stats.operations += 1
                self._finish(unit, policy.stopped_result(unit, self._stop))
            self._source = None
        self._update_stats()

    def _count_attempt(self, *, failed: bool) -> None:
        self.stats.attempts += 1
        if failed:
            self.stats.failures += 1

    def _count_answer(self, result: Result, decision: policy.Decision) -> None:
        failed = policy.counts_as_failure(result.status or 0, decision)
        if failed is not None:
            self._count_attempt(failed=failed)

    def _check_breaker(self) -> None:
        if self._stop is None:
            st = self.stats
            error = policy.breaker(st.attempts, st.failures, self._min_attempts, self.settings)
            if error is not None:
                self._halt(error)

    def _update_stats(self) -> None:
        if hasattr(self, "_pacer"):
            self.stats.rate = round(self._pacer.rate, 1)
            self.stats.quota_rate = round(self._pacer.quota_rate or 0.0, 1)
            self.stats.quota_window = self._pacer.quota_window
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
    grouped: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> tuple[dict[str, Result], EngineStats]:
    """Run ``operations`` through a new :class:`BatchEngine`; return results by key and counters."""
    engine = BatchEngine(
        client,
        settings,
        on_sent=on_sent,
        on_result=on_result,
        on_progress=on_progress,
        grouped=grouped,
    )
    stats = engine.run(operations, total=total)
    return engine.results, stats


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
