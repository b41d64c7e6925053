"""Simulated tenant, one Graph operation end to end: route, permission, quota, fault, apply.

:meth:`Service.operation` is shared by standalone requests and ``$batch`` items, so both
are checked the same way: the handler's roles against the token (403), the request's
resource units and writes against the quotas (429 with Retry-After and the throttle
headers), then injected faults, then the handler itself. A "lost acknowledgement" applies
the write and answers 504 anyway. Whole-request faults (``fault_batch_*`` on a ``$batch``,
``fault_single_*`` on a standalone request) are answered by :meth:`Service.outer_fault`
before any of this, so nothing is applied.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, deque
from typing import Any

from batch.simulator.calls import Call, Caller
from batch.simulator.faults import FaultPlan
from batch.simulator.graph import GraphApi
from batch.simulator.lag import ReadLag
from batch.simulator.options import SimulatorOptions
from batch.simulator.responses import (
    INSUFFICIENT,
    GraphFault,
    Reply,
    error_body,
    fault_reply,
)
from batch.simulator.store import TenantStore
from batch.simulator.throttle import WRITE_METHODS, Throttle, request_cost

_INJECTED = {
    429: ("TooManyRequests", "Please retry again later."),
    500: ("generalException", "An unexpected error occurred."),
    503: ("serviceNotAvailable", "The service is temporarily unavailable. Please retry later."),
    504: ("UnknownError", "The gateway did not receive a timely response."),
}


class Counters:
    """What the simulator did, for tests: requests, writes, 429s sent, faults, resets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        #: monotonic times of applied writes, to check achieved rates against quotas
        self.write_times: deque[float] = deque(maxlen=200_000)

    def add(self, name: str, amount: int = 1) -> None:
        """Count ``amount`` more of ``name``."""
        with self._lock:
            self._counts[name] += amount

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter."""
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._counts.clear()
            self.write_times.clear()


def format_retry_after(seconds: float) -> str:
    """Retry-After as Graph sends it from $batch: fractional seconds."""
    text = f"{max(seconds, 0.001):.3f}".rstrip("0").rstrip(".")
    return text or "0"


class Service:
    """The Graph side of one simulated tenant."""

    def __init__(self, store: TenantStore, options: SimulatorOptions, tenant_id: str) -> None:
        self.store = store
        self.options = options
        self.faults = FaultPlan(options)
        self.lag = ReadLag(options, self.faults)
        self.api = GraphApi(store, options, self.lag)
        user_count = store.connection().execute("SELECT COUNT(*) FROM users").fetchone()[0]
        self.throttle = Throttle(options, tenant_id, user_count)
        self.counters = Counters()

    def operation(
        self, call: Call, caller: Caller, request_id: str, client_request_id: str
    ) -> Reply:
        """Answer one Graph operation (never raises)."""
        self.counters.add("operations")
        if self.options.item_latency_ms:
            time.sleep(self.options.item_latency_ms / 1000)
        try:
            reply = self._operation(call, caller)
        except GraphFault as fault:
            reply = fault_reply(fault, request_id, client_request_id)
        if reply.status == 429:
            self.counters.add("throttled")
        elif 400 <= reply.status < 500:
            # e.g. "answer_400_assignLicense", or "answer_400_assignLicense_usage_location" for
            # the replication-lag refusal, so a benchmark can tell the two apart
            name = call.segments[-1] if call.segments else "root"
            lag = "invalid usage location" in str(reply.body).lower()
            self.counters.add(f"answer_{reply.status}_{name}" + ("_usage_location" if lag else ""))
        return reply

    def _operation(self, call: Call, caller: Caller) -> Reply:
        handler, roles = self.api.resolve(call.method, call.segments)
        if not roles & caller.roles:
            raise GraphFault(403, "Authorization_RequestDenied", INSUFFICIENT)
        call.roles = caller.roles
        cost = request_cost(call.method, call.segments, call.params)
        admitted_at = time.monotonic()  # the quota is charged at this moment
        verdict = self.throttle.admit(caller.client_id, call.method, cost, now=admitted_at)
        if not verdict.admitted:
            raise GraphFault(
                429,
                "TooManyRequests",
                "Please retry again later.",
                headers={
                    "Retry-After": format_retry_after(verdict.retry_after),
                    "x-ms-throttle-scope": verdict.scope,
                    "x-ms-throttle-information": verdict.information,
                    "x-ms-resource-unit": str(verdict.resource_units),
                    "x-ms-throttle-limit-percentage": f"{verdict.limit_percentage:.1f}",
                },
            )
        headers = {"x-ms-resource-unit": str(cost)}
        if verdict.limit_percentage > 0.8:
            headers["x-ms-throttle-limit-percentage"] = f"{verdict.limit_percentage:.1f}"
        injected = self.faults.item_fault(call.method)
        if injected is not None:
            self.counters.add(f"fault_{injected}")
            code, message = _INJECTED[injected]
            extra = dict(headers)
            if injected in (429, 503):
                extra["Retry-After"] = format_retry_after(
                    self.options.scaled(self.options.fault_retry_after)
                )
            raise GraphFault(injected, code, message, headers=extra)
        lost = self.faults.lost_ack(call.method)
        is_write = call.method in WRITE_METHODS
        if is_write:
            self.counters.add("writes")
        self.api.process_due()
        reply = self.api_call(handler, call)
        if is_write and reply.status < 300:
            self.counters.add("writes_applied")
            self.counters.write_times.append(admitted_at)
            if lost:
                self.counters.add("fault_lost_ack")
                code, message = _INJECTED[504]
                raise GraphFault(504, code, message, headers=headers)
        reply.headers.update(headers)
        return reply

    def api_call(self, handler: Any, call: Call) -> Reply:
        """Run a resolved handler."""
        return handler(self.api, call)

    def outer_fault(self, status: int, request_id: str, client_request_id: str) -> Reply:
        """The reply for an injected whole-request fault."""
        code, message = _INJECTED[status]
        headers = {}
        if status in (429, 503):
            headers["Retry-After"] = format_retry_after(
                self.options.scaled(self.options.fault_retry_after)
            )
        if status == 429:
            self.counters.add("throttled")
        self.counters.add(f"outer_fault_{status}")
        return Reply(
            status, error_body(code, message, request_id, client_request_id, status=status), headers
        )


def new_request_id() -> str:
    """A request id as Graph sends them."""
    return str(uuid.uuid4())
