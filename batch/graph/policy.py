"""The engine's rules: what to do with each answer, as pure functions returning a decision.

:class:`batch.graph.engine.BatchEngine` schedules (queues, worker threads, pacing,
concurrency); every choice about an answer is made here, from the answer, the unit's
counters (:class:`Unit`) and :class:`EngineSettings`, and comes back as a decision the
engine applies: :class:`Retry`, :class:`Unknown`, :class:`Verify`, :class:`Finish`,
:class:`RenewToken`, :class:`Halt` or :class:`Proceed`. Nothing here sends, sleeps, queues
or changes a unit.

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
to 100 for a stream of unknown length. Not counted: a 429 or a 401/403 that renews the token;
a ``$batch`` with no answer counts once; a prerequisite's answer counts as an attempt too.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from batch.errors import BatchError, GraphStatusError, GuardStopped, PermissionDenied
from batch.graph.answers import (
    BatchReply,
    backoff_delay,
    graph_error_fields,
    item_status,
    lower_keys,
    parse_retry_after,
    status_error,
)
from batch.graph.client import MAX_BATCH_ITEMS
from batch.graph.operations import Operation, Outcome, Result, Verifier
from batch.graph.pacing import PacerSettings

#: Graph's message for a usage location it has not replicated yet (no code of its own)
USAGE_LOCATION_LAG = "invalid usage location"
#: item statuses sent again after a backoff, within ``max_error_retries``
TRANSIENT = frozenset({408, 500, 502, 503, 507})
#: item statuses that leave the outcome unknown: read back before anything is sent again
UNKNOWN = frozenset({504})
_BREAKER_HINT = "Read the failed rows in the report, fix the cause, then resume the run."


@dataclass
class EngineSettings:
    """Tuning of :class:`batch.graph.engine.BatchEngine` and of the rules here."""

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


@dataclass(eq=False)
class Unit:
    """One operation on its way through the engine, with its counters.

    The engine owns and updates it; the rules here only read it.
    """

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
    #: the last answer seen, for the final result
    last: Result | None = None

    def __post_init__(self) -> None:
        if self.op.prerequisite is None:
            self.prereq_done = True

    def __lt__(self, other: Unit) -> bool:
        return self.seq < other.seq


# -- decisions ------------------------------------------------------------------------------


class RetryKind(enum.StrEnum):
    """Which budget a retry spends."""

    THROTTLED = "throttled"  #: ``max_throttle_retries``
    ERROR = "error"  #: ``max_error_retries`` (5xx, no answer, read back and not in place)
    LAG = "lag"  #: ``max_lag_retries`` (usage location not replicated yet)


@dataclass(frozen=True)
class Retry:
    """Send the unit again, ``after`` seconds from the answer."""

    after: float
    kind: RetryKind


@dataclass(frozen=True)
class Unknown:
    """The outcome is unknown: read back (or, without a hook, see :func:`unknown_outcome`)."""

    status: int | None = None
    request_id: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class Verify:
    """Read the state back with the unit's ``verify`` hook, ``after`` seconds from now."""

    after: float


@dataclass(frozen=True)
class Finish:
    """The unit is done: ``result`` is its final state."""

    result: Result


@dataclass(frozen=True)
class RenewToken:
    """401/403 for the first time in the run: renew the token and send the unit again."""


@dataclass(frozen=True)
class Halt:
    """Stop the run with ``error``; the unit ends with ``result`` (None: built from the error)."""

    error: BatchError
    result: Result | None = None


@dataclass(frozen=True)
class Proceed:
    """The prerequisite is in place: the operation itself goes next."""


Decision = Retry | Unknown | Verify | Finish | RenewToken | Halt | Proceed


class RequestAnswer(enum.StrEnum):
    """How a whole ``POST /$batch`` was answered."""

    NO_ANSWER = "no-answer"  #: no answer (reset, timeout, refused connection)
    REFUSED = "refused"  #: 429 or 503 on the whole: nothing in it was carried out
    UNKNOWN = "unknown"  #: 5xx, or an answer that cannot be read: items may have been applied
    FAILED = "failed"  #: another 4xx on the whole: every item fails with it
    ITEMS = "items"  #: item answers to read one by one


# -- reading answers ------------------------------------------------------------------------


def answer_result(key: str, answer: Mapping[str, Any], attempts: int) -> Result:
    """A result (outcome still unknown) from one item answer: status, error, request-id."""
    status = item_status(answer)
    body = answer.get("body")
    code, message, inner_id = graph_error_fields(body) if status >= 400 else (None, None, None)
    headers = lower_keys(answer.get("headers"))
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


def error_result(unit: Unit, error: BatchError, outcome: Outcome) -> Result:
    """The unit's result from an exception (a Graph status error keeps its fields)."""
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


def retry_after(answer: Mapping[str, Any]) -> float | None:
    """An item answer's own ``Retry-After``, in seconds."""
    return parse_retry_after(lower_keys(answer.get("headers")).get("retry-after"))


def counts_as_failure(status: int, decision: Decision | None = None) -> bool | None:
    """For the breaker: 2xx succeeded; a 429 or a token renewal is not counted (None)."""
    if 200 <= status < 300:
        return False
    return None if status == 429 or isinstance(decision, RenewToken) else True


def verifier(unit: Unit) -> Verifier | None:
    """The read-back for what the unit's last send carried: the operation or its prerequisite."""
    if unit.main_sent:
        return unit.op.verify
    return unit.op.prerequisite.verify if unit.op.prerequisite is not None else None


def request_answer(reply: BatchReply) -> RequestAnswer:
    """Classify the answer to a whole ``$batch`` request."""
    if reply.status is None:
        return RequestAnswer.NO_ANSWER
    if reply.status in (429, 503):
        return RequestAnswer.REFUSED
    if reply.status >= 500 or reply.responses is None:
        return RequestAnswer.UNKNOWN
    if reply.status >= 400:
        return RequestAnswer.FAILED
    return RequestAnswer.ITEMS


# -- the rules ------------------------------------------------------------------------------


def throttled(
    unit: Unit, delay: float | None, settings: EngineSettings, *, request_id: str | None
) -> Retry | Finish:
    """429: wait ``Retry-After`` (``delay``) or back off; exhausted past either limit."""
    tries = unit.throttle_retries + 1
    if delay is None:
        delay = backoff_delay(tries, settings.backoff_base, settings.backoff_cap)
    if tries > settings.max_throttle_retries or delay > settings.max_retry_after:
        return Finish(
            Result(
                unit.op.key,
                Outcome.EXHAUSTED,
                status=429,
                code="TooManyRequests",
                message=f"still throttled after {tries} tries (Retry-After {delay:.1f} s)",
                request_id=request_id,
                attempts=unit.attempts,
                prerequisite=unit.prereq_result,
            )
        )
    return Retry(delay, RetryKind.THROTTLED)


def transient(
    unit: Unit,
    delay: float | None,
    settings: EngineSettings,
    *,
    status: int | None = None,
    request_id: str | None = None,
    message: str | None = None,
    last: Result | None = None,
) -> Retry | Finish:
    """A passing failure: again after ``delay`` or a backoff, within ``max_error_retries``.

    Once exhausted the result keeps the code, message and body of ``last``, the answer just
    handled.
    """
    tries = unit.error_retries + 1
    if tries > settings.max_error_retries:
        return Finish(
            Result(
                unit.op.key,
                Outcome.EXHAUSTED,
                status=status,
                code=last.code if last else None,
                message=message
                or (last.message if last else None)
                or f"failed {tries} times (status {status})",
                request_id=request_id,
                attempts=unit.attempts,
                body=last.body if last else None,
                prerequisite=unit.prereq_result,
            )
        )
    if delay is None:
        delay = backoff_delay(tries, settings.backoff_base, settings.backoff_cap)
    return Retry(min(delay, settings.max_retry_after), RetryKind.ERROR)


def unknown_result(
    unit: Unit,
    *,
    status: int | None = None,
    request_id: str | None = None,
    message: str | None = None,
) -> Result:
    """The result recorded while an outcome is unknown (``unit.last`` until the read-back)."""
    what = "outcome" if unit.main_sent else "the prerequisite's outcome"
    return Result(
        unit.op.key,
        Outcome.UNKNOWN,
        status=status,
        request_id=request_id,
        message=message or f"{what} unknown (status {status})",
        attempts=unit.attempts,
        prerequisite=unit.prereq_result,
    )


def unknown_outcome(unit: Unit, settings: EngineSettings) -> Verify | Finish | Retry:
    """After an unknown outcome (``unit.last`` from :func:`unknown_result`): read back.

    Without a hook the operation ends ``unknown``; a prerequisite alone (an idempotent
    PATCH) is simply sent again.
    """
    last = unit.last or unknown_result(unit)
    if verifier(unit) is not None:
        return Verify(settings.verify_delay)
    if unit.main_sent:
        return Finish(last)
    return transient(
        unit, None, settings, status=last.status, request_id=last.request_id, last=last
    )


class Renewals:
    """When a 401/403 renews the token: the first time; again once the renewed token worked
    (it expired in a long run). An item sent before a renewal carried the old token: it is
    sent again. A renewed token rejected before it ever worked stops the run."""

    def __init__(self) -> None:
        self.spent, self.generation = False, 0  # a renewal not seen working; renewals so far
        self._sent: dict[int, int] = {}  # unit seq -> renewals when it was last sent

    def sent(self, seq: int) -> None:
        self._sent[seq] = self.generation

    def stale(self, seq: int) -> bool:  # its last send carried a token renewed since
        return self._sent.get(seq, 0) != self.generation

    def answered(self, seq: int, status: int | None) -> bool:
        """Note an item's answer; whether a 401/403 on it must stop the run (``renewed``)."""
        self.spent = self.spent and (self.stale(seq) or not 200 <= (status or 0) < 300)
        return self.spent and not self.stale(seq)

    def renew(self) -> None:
        self.spent, self.generation = True, self.generation + 1


def auth_failure(sent: Operation, answer: Mapping[str, Any], *, renewed: bool) -> RenewToken | Halt:
    """401/403 on an item: renew the token the first time in the run, then stop."""
    if not renewed:
        return RenewToken()
    headers = lower_keys(answer.get("headers"))
    error = status_error(sent.method, sent.url, item_status(answer), answer.get("body"), headers)
    return Halt(error)


def is_lag(unit: Unit, result: Result) -> bool:
    """Whether ``result`` is "invalid usage location" just after this run set the location."""
    set_here = unit.op.usage_location_set or (unit.op.prerequisite is not None and unit.prereq_done)
    return (
        set_here and result.status == 400 and USAGE_LOCATION_LAG in (result.message or "").lower()
    )


def lag_retry(unit: Unit, result: Result, settings: EngineSettings) -> Retry | None:
    """Replication lag: again after a delay doubled each time, within ``max_lag_retries``."""
    if not is_lag(unit, result) or unit.lag_retries >= settings.max_lag_retries:
        return None
    return Retry(settings.lag_delay * (2**unit.lag_retries), RetryKind.LAG)


def failed_prerequisite(unit: Unit, pre_result: Result) -> Finish:
    """The prerequisite failed for good: so does the operation, unsent, with its error (424)."""
    pre = replace(pre_result, outcome=Outcome.FAILED)
    return Finish(
        Result(
            unit.op.key,
            Outcome.FAILED,
            status=424,
            code=pre.code,
            message=f"prerequisite failed: {pre.message}",
            request_id=pre.request_id,
            attempts=unit.attempts,
            prerequisite=pre,
        )
    )


def _not_accepted(
    unit: Unit,
    sent: Operation,
    answer: Mapping[str, Any],
    result: Result,
    settings: EngineSettings,
    renewed: bool,
    last: Result,
) -> Decision | None:
    """The rules a prerequisite and an operation share: 429, 401/403, 5xx, 504."""
    status = result.status or 0
    if status == 429:
        return throttled(unit, retry_after(answer), settings, request_id=result.request_id)
    if status in (401, 403):
        return auth_failure(sent, answer, renewed=renewed)
    if status in TRANSIENT:
        delay = retry_after(answer)
        return transient(
            unit, delay, settings, status=status, request_id=result.request_id, last=last
        )
    if status in UNKNOWN:
        return Unknown(status=status, request_id=result.request_id)
    return None


def operation_answer(
    unit: Unit,
    answer: Mapping[str, Any],
    result: Result,
    settings: EngineSettings,
    *,
    renewed: bool,
) -> Decision:
    """The operation's own item answer (``result`` read from it by :func:`answer_result`)."""
    status = result.status or 0
    if 200 <= status < 300:
        return Finish(replace(result, outcome=Outcome.APPLIED))
    return (
        _not_accepted(unit, unit.op, answer, result, settings, renewed, result)
        or lag_retry(unit, result, settings)
        or Finish(replace(result, outcome=Outcome.FAILED))
    )


def prerequisite_answer(
    unit: Unit,
    answer: Mapping[str, Any],
    result: Result,
    settings: EngineSettings,
    *,
    renewed: bool,
) -> Decision:
    """The prerequisite's item answer: :class:`Proceed` once it is in place."""
    status = result.status or 0
    if 200 <= status < 300:
        return Proceed()
    pre = unit.op.prerequisite
    assert pre is not None
    # the operation's last answer is the prerequisite's, under the operation's key
    last = replace(result, key=unit.op.key)
    return _not_accepted(unit, pre, answer, result, settings, renewed, last) or (
        failed_prerequisite(unit, result)
    )


def request_decision(
    unit: Unit, reply: BatchReply, settings: EngineSettings, *, url: str
) -> Decision | None:
    """What the answer to a whole ``POST url`` (``$batch``) means for one unit in it.

    None when the items are answered one by one (:attr:`RequestAnswer.ITEMS`).
    """
    kind = request_answer(reply)
    if kind is RequestAnswer.NO_ANSWER:
        message = str(reply.error) if reply.error else "no answer"
        if reply.delivered:
            return Unknown(message=message)
        return transient(unit, None, settings, message=message, last=unit.last)
    if kind is RequestAnswer.REFUSED:
        delay = parse_retry_after(reply.headers.get("Retry-After"))
        if reply.status == 429:
            return throttled(unit, delay, settings, request_id=reply.request_id)
        return transient(
            unit, delay, settings, status=503, request_id=reply.request_id, last=unit.last
        )
    if kind is RequestAnswer.UNKNOWN:
        return Unknown(status=reply.status, request_id=reply.request_id)
    if kind is RequestAnswer.FAILED:
        error = status_error("POST", url, reply.status or 0, reply.body, reply.headers)
        return Finish(error_result(unit, error, Outcome.FAILED))
    return None


def read_back_answer(
    unit: Unit, answer: bool | BaseException, settings: EngineSettings, *, stopping: bool
) -> Decision:
    """The verify hook's answer: True in place, False not, or the exception it raised."""
    last = unit.last or Result(unit.op.key, Outcome.UNKNOWN)
    if isinstance(answer, PermissionDenied):
        return Halt(answer, last)
    if isinstance(answer, BaseException):
        if unit.verify_attempts < settings.max_verify_attempts and not stopping:
            return Verify(
                backoff_delay(unit.verify_attempts, settings.backoff_base, settings.backoff_cap)
            )
        return Finish(replace(last, message=f"{last.message}; the read-back failed: {answer}"))
    if answer and unit.main_sent:
        return Finish(
            replace(
                last,
                outcome=Outcome.VERIFIED_APPLIED,
                verified=True,
                prerequisite=unit.prereq_result,
            )
        )
    if answer:  # only the prerequisite went, and it is in place: the operation is next
        return Proceed()
    # Read back and not in place: safe to send again, within the error budget.
    if unit.error_retries + 1 > settings.max_error_retries or stopping:
        return Finish(replace(last, outcome=Outcome.VERIFIED_NOT_APPLIED, verified=False))
    return Retry(0.0, RetryKind.ERROR)


def verified_prerequisite(unit: Unit) -> Result | None:
    """The prerequisite's result once a read-back found it in place."""
    pre = unit.op.prerequisite
    if pre is None:
        return None
    return Result(pre.key, Outcome.VERIFIED_APPLIED, verified=True, attempts=unit.pre_attempts)


def stopped_result(unit: Unit, stop: BaseException | None, *, reading_back: bool = False) -> Result:
    """A unit's result when the run stops before it is done.

    Waiting for a read-back: its unknown answer, so noted; sent before: ``stopped``; never
    sent: ``not-attempted``.
    """
    last = unit.last
    if reading_back:
        last = last or Result(unit.op.key, Outcome.UNKNOWN)
        return replace(last, message=f"{last.message}; the run stopped before the read-back")
    return Result(
        unit.op.key,
        Outcome.STOPPED if unit.sent_once else Outcome.NOT_ATTEMPTED,
        status=last.status if last else None,
        code=last.code if last else None,
        message=f"the run stopped: {stop}",
        attempts=unit.attempts,
    )


def breaker_min_attempts(settings: EngineSettings, total: int | None) -> int:
    """Attempts before the breaker may trip: the setting, else a tenth of the run (20..5,000)."""
    if settings.breaker_min_attempts:
        return settings.breaker_min_attempts
    return min(5000, max(20, math.ceil(total / 10))) if total else 100


def breaker(
    attempts: int, failures: int, min_attempts: int, settings: EngineSettings
) -> GuardStopped | None:
    """The error that stops the run once too many attempts failed, else None."""
    if attempts < min_attempts or failures / attempts <= settings.breaker_ratio:
        return None
    return GuardStopped(
        f"Stopped: {failures} of {attempts} attempts failed "
        f"(over {settings.breaker_ratio:.0%} after at least {min_attempts}).",
        hint=_BREAKER_HINT,
    )
