"""The engine's rules as pure functions: each answer in, one decision out, no threads."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from batch.errors import BatchError, GraphRequestError, GuardStopped, PermissionDenied
from batch.graph import policy
from batch.graph.answers import BatchReply
from batch.graph.operations import Operation, Outcome, Result, assign_license
from batch.graph.policy import (
    EngineSettings,
    Finish,
    Halt,
    Proceed,
    RenewToken,
    RequestAnswer,
    Retry,
    RetryKind,
    Unit,
    Unknown,
    Verify,
)

SKU = "05e9a617-0261-4cee-bb44-138d3ef5d965"
SETTINGS = EngineSettings(backoff_base=1.0, backoff_cap=60.0, verify_delay=1.5, lag_delay=2.0)


def _unit(*, usage_location: str | None = None, **counters: Any) -> Unit:
    op = assign_license("row 2", "u1", add={SKU: []}, usage_location=usage_location)
    unit = Unit(op, 0, main_sent=True)
    for name, value in counters.items():
        setattr(unit, name, value)
    return unit


def _answer(status: int, *, message: str | None = None, **headers: str) -> dict[str, Any]:
    answer: dict[str, Any] = {"id": "1", "status": status, "headers": dict(headers)}
    if message is not None:
        answer["body"] = {"error": {"code": "Request_BadRequest", "message": message}}
    return answer


def _decide(unit: Unit, answer: dict[str, Any], *, renewed: bool = False) -> policy.Decision:
    result = policy.answer_result(unit.op.key, answer, unit.attempts)
    return policy.operation_answer(unit, answer, result, SETTINGS, renewed=renewed)


def _pre_decide(unit: Unit, answer: dict[str, Any], *, renewed: bool = False) -> policy.Decision:
    assert unit.op.prerequisite is not None
    result = policy.answer_result(unit.op.prerequisite.key, answer, unit.pre_attempts)
    return policy.prerequisite_answer(unit, answer, result, SETTINGS, renewed=renewed)


# -- 2xx ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 204])
def test_2xx_is_applied(status: int) -> None:
    decision = _decide(_unit(), _answer(status))
    assert isinstance(decision, Finish) and decision.result.outcome is Outcome.APPLIED
    assert decision.result.status == status


def test_a_prerequisite_answered_2xx_lets_the_operation_proceed() -> None:
    assert _pre_decide(_unit(usage_location="FR", main_sent=False), _answer(200)) == Proceed()


# -- 429 ---------------------------------------------------------------------------------------


def test_429_waits_its_own_retry_after() -> None:
    decision = _decide(_unit(), _answer(429, **{"Retry-After": "2.5"}))
    assert decision == Retry(2.5, RetryKind.THROTTLED)


def test_429_without_retry_after_backs_off_with_jitter() -> None:
    first = _decide(_unit(), _answer(429))
    third = _decide(_unit(throttle_retries=2), _answer(429))
    assert isinstance(first, Retry) and first.kind is RetryKind.THROTTLED
    assert 0.5 <= first.after <= 1.0  # base 1 s, full jitter down to half
    assert isinstance(third, Retry) and 2.0 <= third.after <= 4.0  # doubled twice


def test_429_past_the_throttle_budget_is_exhausted() -> None:
    unit = _unit(throttle_retries=SETTINGS.max_throttle_retries)
    decision = _decide(unit, _answer(429, **{"Retry-After": "1"}))
    assert isinstance(decision, Finish)
    assert decision.result.outcome is Outcome.EXHAUSTED and decision.result.status == 429


def test_a_retry_after_longer_than_the_limit_is_not_waited_for() -> None:
    decision = _decide(_unit(), _answer(429, **{"Retry-After": "301"}))
    assert isinstance(decision, Finish) and decision.result.outcome is Outcome.EXHAUSTED


def test_a_429_is_not_counted_by_the_breaker() -> None:
    assert policy.counts_as_failure(429) is None
    assert policy.counts_as_failure(204) is False
    assert policy.counts_as_failure(400) is True and policy.counts_as_failure(504) is True


# -- 5xx ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 507])
def test_5xx_is_retried_after_a_backoff(status: int) -> None:
    decision = _decide(_unit(), _answer(status))
    assert isinstance(decision, Retry) and decision.kind is RetryKind.ERROR
    assert 0.5 <= decision.after <= 1.0


def test_5xx_honours_retry_after_up_to_the_limit() -> None:
    assert _decide(_unit(), _answer(503, **{"Retry-After": "7"})) == Retry(7.0, RetryKind.ERROR)
    capped = _decide(_unit(), _answer(503, **{"Retry-After": "900"}))
    assert capped == Retry(SETTINGS.max_retry_after, RetryKind.ERROR)


def test_5xx_past_the_error_budget_is_exhausted() -> None:
    unit = _unit(error_retries=SETTINGS.max_error_retries)
    decision = _decide(unit, _answer(500, message="boom"))
    assert isinstance(decision, Finish)
    assert decision.result.outcome is Outcome.EXHAUSTED and decision.result.message == "boom"


# -- unknown outcomes --------------------------------------------------------------------------


def test_504_is_an_unknown_outcome() -> None:
    assert _decide(_unit(), _answer(504, **{"request-id": "r1"})) == Unknown(504, "r1")


def test_an_unknown_outcome_is_read_back_before_anything_is_resent() -> None:
    unit = _unit()
    unit.last = policy.unknown_result(unit, status=504)
    assert policy.unknown_outcome(unit, SETTINGS) == Verify(SETTINGS.verify_delay)


def test_an_unknown_outcome_without_a_read_back_ends_unknown() -> None:
    unit = _unit()
    unit.op = replace(unit.op, verify=None)
    unit.last = policy.unknown_result(unit, status=504)
    decision = policy.unknown_outcome(unit, SETTINGS)
    assert isinstance(decision, Finish) and decision.result.outcome is Outcome.UNKNOWN
    assert decision.result.message == "outcome unknown (status 504)"


def test_a_prerequisite_without_a_read_back_is_simply_sent_again() -> None:
    unit = _unit(usage_location="FR", main_sent=False)
    assert unit.op.prerequisite is not None
    unit.op = replace(unit.op, prerequisite=replace(unit.op.prerequisite, verify=None))
    unit.last = policy.unknown_result(unit, status=504)
    decision = policy.unknown_outcome(unit, SETTINGS)
    assert isinstance(decision, Retry) and decision.kind is RetryKind.ERROR


def test_the_read_back_reads_what_the_last_send_carried() -> None:
    unit = _unit(usage_location="FR", main_sent=False)
    assert unit.op.prerequisite is not None
    assert policy.verifier(unit) is unit.op.prerequisite.verify
    unit.main_sent = True
    assert policy.verifier(unit) is unit.op.verify


def test_read_back_in_place_is_verified_applied() -> None:
    unit = _unit(last=Result("row 2", Outcome.UNKNOWN, status=504))
    decision = policy.read_back_answer(unit, True, SETTINGS, stopping=False)
    assert isinstance(decision, Finish)
    assert decision.result.outcome is Outcome.VERIFIED_APPLIED and decision.result.verified


def test_read_back_not_in_place_sends_again_within_the_error_budget() -> None:
    unit = _unit(last=Result("row 2", Outcome.UNKNOWN))
    assert policy.read_back_answer(unit, False, SETTINGS, stopping=False) == Retry(
        0.0, RetryKind.ERROR
    )
    unit.error_retries = SETTINGS.max_error_retries
    spent = policy.read_back_answer(unit, False, SETTINGS, stopping=False)
    assert isinstance(spent, Finish) and spent.result.outcome is Outcome.VERIFIED_NOT_APPLIED
    unit.error_retries = 0
    stopping = policy.read_back_answer(unit, False, SETTINGS, stopping=True)
    assert isinstance(stopping, Finish) and stopping.result.verified is False


def test_a_prerequisite_read_back_in_place_lets_the_operation_proceed() -> None:
    unit = _unit(usage_location="FR", main_sent=False)
    assert policy.read_back_answer(unit, True, SETTINGS, stopping=False) == Proceed()


def test_a_failed_read_back_is_tried_again_then_ends_unknown() -> None:
    unit = _unit(verify_attempts=1, last=Result("row 2", Outcome.UNKNOWN, message="lost"))
    again = policy.read_back_answer(unit, GraphRequestError("reset"), SETTINGS, stopping=False)
    assert isinstance(again, Verify) and 0.5 <= again.after <= 1.0
    unit.verify_attempts = SETTINGS.max_verify_attempts
    done = policy.read_back_answer(unit, GraphRequestError("reset"), SETTINGS, stopping=False)
    assert isinstance(done, Finish) and done.result.outcome is Outcome.UNKNOWN
    assert done.result.message == "lost; the read-back failed: reset"


def test_a_read_back_denied_stops_the_run() -> None:
    unit = _unit(last=Result("row 2", Outcome.UNKNOWN))
    denied = PermissionDenied("no", status=403)
    assert policy.read_back_answer(unit, denied, SETTINGS, stopping=False) == Halt(
        denied, unit.last
    )


# -- whole requests ----------------------------------------------------------------------------


def _reply(status: int | None, **kw: Any) -> BatchReply:
    values: dict[str, Any] = dict(headers={}, responses=None)
    values.update(kw)
    return BatchReply(status=status, **values)


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (_reply(None), RequestAnswer.NO_ANSWER),
        (_reply(429), RequestAnswer.REFUSED),
        (_reply(503), RequestAnswer.REFUSED),
        (_reply(500), RequestAnswer.UNKNOWN),
        (_reply(504), RequestAnswer.UNKNOWN),
        (_reply(200), RequestAnswer.UNKNOWN),  # no readable items
        (_reply(400, responses={}), RequestAnswer.FAILED),
        (_reply(200, responses={}), RequestAnswer.ITEMS),
    ],
)
def test_whole_request_answers(reply: BatchReply, kind: RequestAnswer) -> None:
    assert policy.request_answer(reply) is kind


def test_a_whole_request_refused_is_retried_after_its_retry_after() -> None:
    url = "https://graph.example/v1.0/$batch"
    throttled = _reply(429, headers={"Retry-After": "3"})
    assert policy.request_decision(_unit(), throttled, SETTINGS, url=url) == Retry(
        3.0, RetryKind.THROTTLED
    )
    unavailable = _reply(503, headers={"Retry-After": "4"})
    assert policy.request_decision(_unit(), unavailable, SETTINGS, url=url) == Retry(
        4.0, RetryKind.ERROR
    )


def test_no_answer_is_unknown_unless_the_request_never_left() -> None:
    url = "https://graph.example/v1.0/$batch"
    lost = _reply(None, error=GraphRequestError("reset"))
    assert policy.request_decision(_unit(), lost, SETTINGS, url=url) == Unknown(message="reset")
    refused = _reply(None, delivered=False)
    decision = policy.request_decision(_unit(), refused, SETTINGS, url=url)
    assert isinstance(decision, Retry) and decision.kind is RetryKind.ERROR


def test_a_whole_request_answered_5xx_is_an_unknown_outcome() -> None:
    reply = _reply(502, request_id="r2")
    assert policy.request_decision(_unit(), reply, SETTINGS, url="u") == Unknown(502, "r2")


def test_a_whole_request_refused_with_4xx_fails_every_item() -> None:
    reply = _reply(400, responses={}, body={"error": {"code": "BadRequest", "message": "mixed"}})
    decision = policy.request_decision(_unit(), reply, SETTINGS, url="u")
    assert isinstance(decision, Finish) and decision.result.outcome is Outcome.FAILED
    assert decision.result.status == 400 and decision.result.message == "mixed"


# -- 424: a prerequisite that failed for good --------------------------------------------------


def test_a_prerequisite_refused_fails_the_operation_unsent_with_424() -> None:
    unit = _unit(usage_location="FR", main_sent=False)
    decision = _pre_decide(unit, _answer(400, message="Invalid value for usageLocation"))
    assert isinstance(decision, Finish)
    result = decision.result
    assert result.outcome is Outcome.FAILED and result.status == 424
    assert result.message == "prerequisite failed: Invalid value for usageLocation"
    assert result.prerequisite is not None and result.prerequisite.outcome is Outcome.FAILED


def test_a_prerequisite_answered_504_is_an_unknown_outcome() -> None:
    assert _pre_decide(_unit(usage_location="FR"), _answer(504)) == Unknown(504)


# -- 401/403 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_401_403_renews_the_token_once_then_halts(status: int) -> None:
    assert _decide(_unit(), _answer(status)) == RenewToken()
    decision = _decide(_unit(), _answer(status, message="denied"), renewed=True)
    assert isinstance(decision, Halt) and isinstance(decision.error, PermissionDenied)
    assert decision.error.status == status and decision.result is None


def test_a_prerequisite_denied_after_a_renewal_halts_on_the_prerequisite() -> None:
    decision = _pre_decide(_unit(usage_location="FR"), _answer(403), renewed=True)
    assert isinstance(decision, Halt) and isinstance(decision.error, PermissionDenied)
    assert decision.error.method == "PATCH"


# -- other 4xx and replication lag -------------------------------------------------------------

LAG = "Invalid usage location for user"


@pytest.mark.parametrize("status", [400, 404, 409])
def test_other_4xx_is_final(status: int) -> None:
    decision = _decide(_unit(), _answer(status, message="no seats"))
    assert isinstance(decision, Finish) and decision.result.outcome is Outcome.FAILED


def test_usage_location_lag_is_retried_when_this_run_set_the_location() -> None:
    unit = _unit(usage_location="FR", prereq_done=True, lag_retries=1)
    assert _decide(unit, _answer(400, message=LAG)) == Retry(4.0, RetryKind.LAG)
    flagged = _unit()
    flagged.op = replace(flagged.op, usage_location_set=True)
    assert _decide(flagged, _answer(400, message=LAG)) == Retry(2.0, RetryKind.LAG)


def test_usage_location_error_is_final_when_this_run_did_not_set_it() -> None:
    decision = _decide(_unit(), _answer(400, message=LAG))
    assert isinstance(decision, Finish) and decision.result.outcome is Outcome.FAILED


def test_usage_location_lag_past_its_budget_is_final() -> None:
    unit = _unit(usage_location="FR", prereq_done=True, lag_retries=SETTINGS.max_lag_retries)
    decision = _decide(unit, _answer(400, message=LAG))
    assert isinstance(decision, Finish) and decision.result.outcome is Outcome.FAILED


# -- the breaker -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "minimum"),
    [(None, 100), (50, 20), (1_000, 100), (100_000, 5_000), (0, 100)],
)
def test_breaker_minimum_is_a_tenth_of_the_run_clamped(total: int | None, minimum: int) -> None:
    assert policy.breaker_min_attempts(SETTINGS, total) == minimum
    assert policy.breaker_min_attempts(EngineSettings(breaker_min_attempts=7), total) == 7


def test_breaker_trips_over_the_ratio_after_the_minimum() -> None:
    assert policy.breaker(19, 19, 20, SETTINGS) is None  # not enough attempts yet
    assert policy.breaker(20, 8, 20, SETTINGS) is None  # 40 % exactly: not over
    tripped = policy.breaker(20, 9, 20, SETTINGS)
    assert isinstance(tripped, GuardStopped) and "9 of 20 attempts failed" in str(tripped)


# -- a stop ------------------------------------------------------------------------------------


def test_a_stop_ends_units_by_where_they_were() -> None:
    stop = BatchError("Interrupted.")
    never = Unit(Operation("row 9", "POST", "/x"), 1)
    assert policy.stopped_result(never, stop).outcome is Outcome.NOT_ATTEMPTED
    waiting = _unit(sent_once=True, last=Result("row 2", Outcome.UNKNOWN, status=503))
    stopped = policy.stopped_result(waiting, stop)
    assert stopped.outcome is Outcome.STOPPED and stopped.status == 503
    reading = _unit(last=Result("row 2", Outcome.UNKNOWN, message="lost"))
    result = policy.stopped_result(reading, stop, reading_back=True)
    assert result.outcome is Outcome.UNKNOWN
    assert result.message == "lost; the run stopped before the read-back"


def test_token_renewals_follow_the_token_not_the_clock() -> None:
    """Renewed once; in-flight items sent with the old token are sent again, never a halt;
    a renewed token that worked and later expired is renewed again; one rejected at once
    stops the run."""
    renewals = policy.Renewals()
    renewals.sent(1)
    renewals.sent(2)
    assert renewals.answered(1, 401) is False  # first 401: renew
    renewals.renew()
    assert renewals.stale(2) and renewals.answered(2, 401) is False  # sent before: again
    renewals.sent(1)
    renewals.sent(2)
    assert renewals.answered(1, 200) is False  # the renewed token works
    assert renewals.answered(2, 401) is False  # ... and later expires: renew again
    renewals.renew()
    renewals.sent(2)
    assert renewals.answered(2, 403) is True  # rejected before it ever worked: stop


def test_a_401_says_token_unless_graph_says_permission() -> None:
    from batch.graph.answers import status_error

    expired = {"error": {"code": "InvalidAuthenticationToken", "message": "the token is expired."}}
    assert "expired or was rejected" in str(status_error("GET", "/users", 401, expired).hint)
    denied = {
        "error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges."}
    }
    for status in (401, 403):
        assert "lacks a permission" in str(status_error("GET", "/users", status, denied).hint)
