"""Reads in bulk: GETs packed 20 to a ``$batch``, several batches in flight, within Graph's budget.

A sheet's users are looked up 15 to a request (``in`` takes no more), and those requests
go 20 to a ``$batch``. At 200 ms or more per round trip, sending the batches one after the
other costs more than the writes themselves for a small sheet, so :func:`get_many` keeps
several batches in flight, each on its own thread (the client's ``requests`` session is
pooled; a batch waits on the network, not on Python).

**How many in flight, from Graph's documented limits** (graph-reference.md section 2,
identity and access): the app+tenant budget is 3,500 resource units (RU) per 10 s for the
smallest tenants (S, under 50 users; 5,000 for M, 8,000 for L), and it is shared with the
run's writes (1 RU each, at most 3,000 per 150 s, so at most 200 RU per 10 s). A lookup
``GET /users?$filter=...&$select=...`` costs 1 RU (``users`` 2, minus 1 for ``$select``); a
read of one object by id 1 RU (any identity path, 1). So reads are given half of the
smallest budget, :data:`READ_RU_BUDGET` = 1,750 RU per 10 s, and :class:`ReadBudget` holds
a batch back when sending it would spend more than that over the last 10 s. A batch of 20
lookups is 20 RU, so up to 87 batches fit in a window: within that, how many are in flight
at once only decides the wall time, not the cost, and :data:`MAX_IN_FLIGHT` = 8 (half the
client's connection pool of 16) is enough to cover a round trip of 0.4 s at 400 RU/s: the
budget, not the in-flight count, is what a very large sheet meets first. With reads paced
under half of the smallest budget and writes under 200 RU per 10 s, reads are never
answered 429 at Graph's default limits; should they be anyway (another app), an item
answered 429 or 5xx is sent again after its ``Retry-After`` (or backoff), as single reads are.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from batch.graph.answers import backoff_delay, lower_keys, parse_retry_after, status_error

log = logging.getLogger(__name__)

#: Graph's limit on requests inside one ``$batch`` body.
MAX_BATCH_ITEMS = 20
#: answers after which a read (or an idempotent request) is sent again: throttled (429),
#: and the server errors Graph documents as transient (500, 502, 503, 504; errors.md)
RETRY_READ_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Graph's app+tenant budget for the smallest tenants (S), and its window
RU_LIMIT_SMALLEST = 3500
RU_WINDOW = 10.0
#: resource units batched reads may spend per :data:`RU_WINDOW`: half the smallest budget
READ_RU_BUDGET = RU_LIMIT_SMALLEST // 2
#: ``$batch`` requests of reads in flight at once
MAX_IN_FLIGHT = 8


class ReadBudget:
    """Resource units spent on batched reads over the last ``window`` s; waits when full."""

    def __init__(
        self,
        limit: int = READ_RU_BUDGET,
        window: float = RU_WINDOW,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._spent: deque[tuple[float, int]] = deque()
        self._total = 0
        self._lock = threading.Lock()
        #: seconds spent waiting for the budget, in all
        self.waited = 0.0

    def take(self, units: int) -> None:
        """Spend ``units`` now, after waiting until they fit in the window."""
        with self._lock:  # one waiter at a time: batches leave in the order they asked
            while True:
                now = self._clock()
                while self._spent and self._spent[0][0] <= now - self.window:
                    self._total -= self._spent.popleft()[1]
                if not self._spent or self._total + units <= self.limit:
                    self._spent.append((now, units))
                    self._total += units
                    return
                wait = self._spent[0][0] + self.window - now
                self.waited += wait
                self._sleep(wait)


@dataclass
class ReadAnswer:
    """Graph's answer to one GET sent inside a ``$batch``."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def get_many(
    client: Any, paths: list[str], *, cost: int = 1, in_flight: int = MAX_IN_FLIGHT
) -> dict[str, ReadAnswer]:
    """Graph's answer to each GET of ``paths``, sent 20 to a ``$batch``, several in flight.

    Fewer than ``in_flight`` full batches are spread evenly over ``in_flight`` smaller ones:
    the same resource units, and Graph answers a short ``$batch`` sooner.

    ``cost`` is the resource units of one GET (1 for a user lookup or a read by id). An item
    answered 429 or 5xx, or a batch that got no answer, is sent again after ``Retry-After``
    (else backoff), at most ``client.retry.max_retries`` times; past that, the last answer
    is returned (or, for a batch with no answer, the error raised). Paths are sent once
    each, in order; the answers are keyed by path.
    """
    unique = list(dict.fromkeys(paths))
    # fewer than a full load: spread over the batches in flight (a short one answers sooner)
    size = max(1, min(MAX_BATCH_ITEMS, -(-len(unique) // max(1, in_flight))))
    groups = [unique[i : i + size] for i in range(0, len(unique), size)]
    answers: dict[str, ReadAnswer] = {}
    if len(groups) <= 1 or in_flight <= 1:
        for group in groups:
            answers.update(_send_group(client, group, cost))
        return answers
    with ThreadPoolExecutor(
        max_workers=min(in_flight, len(groups)), thread_name_prefix="graph-read"
    ) as pool:
        for result in pool.map(lambda group: _send_group(client, group, cost), groups):
            answers.update(result)
    return answers


def _send_group(client: Any, paths: list[str], cost: int) -> dict[str, ReadAnswer]:
    """Send one ``$batch`` of GETs until every item has a final answer."""
    answers: dict[str, ReadAnswer] = {}
    pending = list(paths)
    attempt = 0
    retry = client.retry
    while pending:
        attempt += 1
        client.read_budget.take(cost * len(pending))
        items = [{"id": str(i), "method": "GET", "url": p} for i, p in enumerate(pending)]
        reply = client.send_batch(items)
        if reply.status is not None:
            client.stats.add(read_batches=1, read_batch_seconds=reply.elapsed)
        wait, again = 0.0, []
        for index, path in enumerate(pending):
            answer = (reply.responses or {}).get(str(index))
            status = int(answer.get("status", 0)) if answer else 0
            if answer is not None and (
                status not in RETRY_READ_STATUSES or attempt > retry.max_retries
            ):
                answers[path] = ReadAnswer(
                    status, answer.get("body"), lower_keys(answer.get("headers"))
                )
                continue
            if answer is None and attempt > retry.max_retries:
                raise reply.error or status_error(
                    "POST",
                    f"{client.graph_url}/$batch",
                    reply.status or 0,
                    reply.body,
                    reply.headers,
                )
            # an item's own Retry-After, or the whole batch's when it was refused whole
            headers = lower_keys(answer.get("headers") if answer else dict(reply.headers))
            delay = parse_retry_after(headers.get("retry-after"))
            if delay is None:
                delay = backoff_delay(attempt, retry.backoff_base, retry.backoff_cap)
            wait = max(wait, delay)
            again.append(path)
        pending = again
        if pending:
            client.stats.add(retries=1)
            log.debug("%d batched reads again in %.2f s", len(pending), wait)
            client.sleep(min(wait, retry.max_retry_after))
    return answers
