"""Simulated tenant, throttling: Graph's identity-and-access limits, enforced exactly.

Limits (graph-reference.md section 2): per app+tenant a resource-unit budget per 10 s by
tenant size (S under 50 users: 3,500; M up to 500: 5,000; L: 8,000) and a write quota of
3,000 per 150 s; per tenant a write quota of 18,000 per 300 s. Costs: GET users 2,
subscribedSkus 3, groups/{id}/members 3, users/{id}/licenseDetails 2, any other GET 1, any
write 1 RU + 1 write; ``$select`` -1, ``$top`` < 20 -1, ``$expand`` +1, never below 1.

The docs call the algorithm a token bucket. This one keeps a sliding log of what each
budget admitted over the last window, which is stricter: no window of that length ever
admits more than the limit (a bucket could admit twice the limit across a refill), so a
test can assert exactly that. A rejected request costs nothing and answers 429 with a
fractional ``Retry-After``: the seconds until enough of the log has aged out. Windows and
Retry-After shrink by ``time_scale``; the limits do not.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from batch.simulator.options import SimulatorOptions

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def tenant_size_quota(user_count: int) -> int:
    """The app+tenant resource units per 10 s for a tenant of ``user_count`` users."""
    if user_count < 50:
        return 3500
    if user_count <= 500:
        return 5000
    return 8000


def request_cost(method: str, segments: list[str], params: dict[str, str]) -> int:
    """Resource units of one Graph request, base cost plus documented modifiers."""
    method = method.upper()
    if method in WRITE_METHODS:
        return 1
    base = 1
    lower = [segment.lower() for segment in segments]
    if lower == ["users"]:
        base = 2
    elif lower[:1] == ["subscribedskus"] or (
        len(lower) == 3 and lower[0] == "groups" and lower[2] == "members"
    ):
        base = 3
    elif len(lower) == 3 and lower[0] == "users" and lower[2] == "licensedetails":
        base = 2
    cost = base
    if "$select" in params:
        cost -= 1
    if "$expand" in params:
        cost += 1
    top = params.get("$top", "")
    if top.isdigit() and int(top) < 20:
        cost -= 1
    return max(1, cost)


class _SlidingLog:
    """Admissions over the last ``window`` seconds, with their weights."""

    def __init__(self) -> None:
        self.entries: deque[tuple[float, int]] = deque()
        self.total = 0

    def trim(self, now: float, window: float) -> None:
        while self.entries and self.entries[0][0] <= now - window:
            self.total -= self.entries.popleft()[1]

    def wait_for(self, now: float, window: float, limit: int, cost: int) -> float:
        """Seconds until ``cost`` more fits under ``limit`` (0 when it fits now)."""
        if self.total + cost <= limit:
            return 0.0
        excess = self.total + cost - limit
        freed = 0
        for at, weight in self.entries:
            freed += weight
            if freed >= excess:
                return max(0.001, at + window - now)
        return window  # cost above the limit itself: never fits; say a whole window

    def add(self, now: float, cost: int) -> None:
        self.entries.append((now, cost))
        self.total += cost


@dataclass
class Verdict:
    """The outcome of asking for quota: admitted, or how long to wait and why."""

    admitted: bool
    retry_after: float = 0.0
    scope: str = ""
    information: str = ""
    resource_units: int = 1
    limit_percentage: float = 0.0


class Throttle:
    """All the budgets of one simulated tenant, shared by every handler thread."""

    def __init__(self, options: SimulatorOptions, tenant_id: str, user_count: int) -> None:
        self.options = options
        self.tenant_id = tenant_id
        self.user_count = user_count
        self._lock = threading.Lock()
        self._ru: dict[str, _SlidingLog] = {}
        self._writes: dict[str, _SlidingLog] = {}
        self._tenant_writes = _SlidingLog()

    def admit(self, app_id: str, method: str, cost: int, *, now: float | None = None) -> Verdict:
        """Charge one request against the budgets, or say how long to wait."""
        opts = self.options
        is_write = method.upper() in WRITE_METHODS
        if not opts.throttling:
            return Verdict(True, resource_units=cost)
        now = time.monotonic() if now is None else now
        ru_limit = opts.resource_unit_quota or tenant_size_quota(self.user_count)
        ru_window = opts.scaled(opts.resource_unit_window)
        write_window = opts.scaled(opts.write_window)
        tenant_window = opts.scaled(opts.tenant_write_window)
        with self._lock:
            ru = self._ru.setdefault(app_id, _SlidingLog())
            writes = self._writes.setdefault(app_id, _SlidingLog())
            ru.trim(now, ru_window)
            writes.trim(now, write_window)
            self._tenant_writes.trim(now, tenant_window)
            checks = [
                (
                    ru.wait_for(now, ru_window, ru_limit, cost),
                    f"Tenant_Application/ReadWrite/{app_id}/{self.tenant_id}",
                    "ResourceUnitLimitExceeded",
                )
            ]
            if is_write:
                checks.append(
                    (
                        writes.wait_for(now, write_window, opts.write_quota, 1),
                        f"Tenant_Application/Write/{app_id}/{self.tenant_id}",
                        "WriteLimitExceeded",
                    )
                )
                checks.append(
                    (
                        self._tenant_writes.wait_for(
                            now, tenant_window, opts.tenant_write_quota, 1
                        ),
                        f"Tenant/Write/{app_id}/{self.tenant_id}",
                        "WriteLimitExceeded",
                    )
                )
            wait, scope, info = max(checks, key=lambda c: c[0])
            percentage = max(
                (ru.total + cost) / ru_limit,
                ((writes.total + 1) / opts.write_quota) if is_write else 0.0,
            )
            if wait > 0:
                return Verdict(
                    False, round(wait, 3), scope, info, cost, min(1.8, max(1.0, percentage))
                )
            ru.add(now, cost)
            if is_write:
                writes.add(now, 1)
                self._tenant_writes.add(now, 1)
            return Verdict(True, resource_units=cost, limit_percentage=min(1.8, percentage))
