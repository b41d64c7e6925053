"""Onboarding, writing: the writes, and the read-back of rows already written while they go on.

Writes are paced by Graph's write quota (100 a second or less), reads are not: so while the
engine writes, the users of rows whose every write has settled are read back, 300 at a time
(20 lookups of 15, one ``$batch``). When the last write is answered the rest of the settled
rows are read at once, in the background, while the run settles lost answers and sums up
its outcomes; the read-back then reads only rows that settled otherwise. It treats the
users read early as read (:func:`reconcile_rows` re-reads a written row that does not match
yet, as it would any).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batch.errors import BatchError, GraphError
from batch.graph.engine import EngineStats
from batch.jobs.onboarding.context import RunContext
from batch.jobs.onboarding.prepare import Prepared
from batch.run.execute import execute_plan, settle
from batch.run.tenant import UserState, read_users

__all__ = ["EarlyReadBack", "Written", "write"]

log = logging.getLogger(__name__)

#: users read back at once while writing: 20 lookups of 15, one ``$batch``
EARLY_CHUNK = 300


class EarlyReadBack:
    """Reads back, in a thread, the users of rows whose writes have all settled."""

    def __init__(
        self,
        prepared: Prepared,
        read: Callable[[list[str], bool], dict[str, UserState]],
        *,
        chunk: int = EARLY_CHUNK,
    ) -> None:
        self._read = read
        self.chunk = chunk
        rows = [row for row in prepared.plan.rows if row.ops and row.user_id]
        self._left = {row.row: set(row.ops) for row in rows}
        self._row_of = {key: row.row for row in rows for key in row.ops}
        self._user = {row.row: row.request.user for row in rows}
        self._ready: list[int] = []
        self._stopping = False
        self._last = False  # the writes ended: read what is ready, whatever its size, then end
        self._cond = threading.Condition()
        self.users: dict[str, UserState] = {}
        self.rows: set[int] = set()
        self._thread = threading.Thread(target=self._run, name="early-read-back", daemon=True)

    def start(self) -> EarlyReadBack:
        self._thread.start()
        return self

    def settled(self, key: str) -> None:
        """An operation's result was journaled (called from the engine's thread)."""
        with self._cond:
            row = self._row_of.get(key)
            left = self._left.get(row, set()) if row is not None else set()
            if row is None or key not in left:
                return
            left.discard(key)
            if not left:
                self._ready.append(row)
                if len(self._ready) >= self.chunk:
                    self._cond.notify()

    def read_rest(self) -> None:
        """The writes ended: read every settled row not read yet, in the background."""
        with self._cond:
            self._last = True
            self._cond.notify()

    def finish(self) -> None:
        """Stop reading (a read under way ends first); what is not read is read later."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self.join()

    def join(self) -> EarlyReadBack:
        """Wait for the reads under way (and the rest, after :meth:`read_rest`)."""
        if self._thread.is_alive():
            self._thread.join()
        return self

    def _run(self) -> None:
        while True:
            with self._cond:
                while len(self._ready) < self.chunk and not (self._stopping or self._last):
                    self._cond.wait()
                if self._stopping or (self._last and not self._ready):
                    return
                size = len(self._ready) if self._last else self.chunk
                rows, self._ready = self._ready[:size], self._ready[size:]
            try:
                users = self._read([self._user[row] for row in rows], self._last)
            except (GraphError, OSError) as exc:  # the read-back reads them again
                log.debug("early read-back of %d rows failed: %s", len(rows), exc)
                continue
            with self._cond:
                self.users.update(users)
                self.rows.update(rows)


@dataclass
class Written:
    """What the writes left: the engine's figures, what stopped them, the rows read early."""

    stats: list[EngineStats]
    stop: BatchError | None = None
    early: EarlyReadBack | None = None

    @property
    def users(self) -> dict[str, UserState]:
        """The users read early, by casefolded name (waits for the reads under way)."""
        return self.early.join().users if self.early is not None else {}

    @property
    def rows(self) -> set[int]:
        """The rows whose users were read early (waits for the reads under way)."""
        return self.early.join().rows if self.early is not None else set()


def write(ctx: RunContext, prepared: Prepared) -> Written:
    """Send what is still to send and settle lost answers; read rows back as they settle."""
    journal = ctx.journal
    client: Any = ctx.client
    # while writing nobody waits: 20 lookups to a batch; the rest, spread to come back soonest
    early = EarlyReadBack(
        prepared, lambda names, last: read_users(client, names, in_flight=None if last else 1)
    ).start()
    stop: BatchError | None = None
    try:
        _, stats = execute_plan(
            client,
            prepared.plan.ops,
            journal,
            settings=ctx.engine,
            on_progress=ctx.on_progress,
            on_done=early.settled,
        )
    except BatchError as exc:  # breaker, permissions: report what happened, then stop
        journal.set(stop_reason=str(exc))
        stop, stats = exc, []
    except BaseException:
        early.finish()
        raise
    log.info("phase: writes finished (%d rows read back already)", len(early.rows))
    early.read_rest()
    # answers lost in this process or an earlier one: the tenant says how they ended
    settle(client, journal, wait=0 if stop else prepared.options.verify_wait)
    return Written(stats, stop, early)
