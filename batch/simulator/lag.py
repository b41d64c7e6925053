"""Simulated tenant, read-after-write lag: a read may show a user as before a recent write.

Entra is eventually consistent (graph-reference.md section 4: "A successful write to
Microsoft Entra does not guarantee that an immediate read will reflect that change."). With
``SimulatorOptions.read_lag`` above 0, every applied write to a user (``assignLicense``,
``PATCH /users/{id}``, ``reprocessLicenseAssignment``, group-based licensing changing a
member's licenses) keeps a snapshot of the user as it was before that write. For
``read_lag_window`` seconds (scaled by ``time_scale``) after the write, each read of that
user (``GET /users/{id}``, ``GET /users/{id}/licenseDetails``, ``GET /users`` with or without
``$filter``, standalone or inside ``$batch``) shows the snapshot with probability
``read_lag``, one seeded draw per user per read. The write itself is applied at once.

Choices, where the docs are silent:

- the snapshot is the user before the *latest* write: a second write inside the window
  replaces the entry ("one write behind"), so an old state never reappears after a newer
  one was read;
- a list applies its ``$filter`` to the state it shows: a lagging user whose older state
  matches is listed (even if the current one does not), one whose older state does not match
  is left out; ``@odata.count`` and ``/users/$count`` are counted on the current state;
- writes made while ``read_lag`` is 0 keep no snapshot (cheap when off); the table of
  snapshots lives in the server process (two servers on one state do not share it) and is
  pruned as windows expire.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

from batch.simulator.faults import FaultPlan
from batch.simulator.options import SimulatorOptions


@dataclass(frozen=True)
class UserSnapshot:
    """A user's row and license rows as they were before a write."""

    user_id: str
    row: dict[str, Any]
    licenses: list[dict[str, Any]]

    @property
    def seq(self) -> int:
        return int(self.row["seq"])


def take_snapshot(db: sqlite3.Connection, user_id: str) -> UserSnapshot | None:
    """The user's current state (inside the write transaction, before the change)."""
    row = db.execute("SELECT * FROM users WHERE id=?", (user_id,)).fetchone()
    if row is None:
        return None
    licenses = [
        dict(r)
        for r in db.execute("SELECT * FROM licenses WHERE user_id=? ORDER BY rowid", (user_id,))
    ]
    return UserSnapshot(user_id, dict(row), licenses)


class ReadLag:
    """Recently written users (id -> write time and prior snapshot) and the lag draws."""

    def __init__(self, options: SimulatorOptions, faults: FaultPlan) -> None:
        self.options = options
        self.faults = faults
        self._lock = threading.Lock()
        self._recent: dict[str, tuple[float, UserSnapshot]] = {}

    @property
    def enabled(self) -> bool:
        """True when writes should keep snapshots."""
        return self.options.read_lag > 0

    def _window(self) -> float:
        return self.options.scaled(self.options.read_lag_window)

    def _prune(self, now: float) -> None:
        window = self._window()
        for key in [k for k, (at, _) in self._recent.items() if at <= now - window]:
            del self._recent[key]

    def snapshots(self, db: sqlite3.Connection, user_ids: list[str]) -> list[UserSnapshot]:
        """Snapshots of ``user_ids`` before a write (empty when the lag is off)."""
        if not self.enabled:
            return []
        return [s for s in (take_snapshot(db, uid) for uid in dict.fromkeys(user_ids)) if s]

    def record(self, snapshots: list[UserSnapshot]) -> None:
        """The write that followed ``snapshots`` was applied: start their windows now."""
        if not snapshots:
            return
        now = time.monotonic()
        with self._lock:
            self._prune(now)
            for snapshot in snapshots:
                self._recent[snapshot.user_id] = (now, snapshot)

    def pending(self) -> list[UserSnapshot]:
        """Snapshots still inside their window (no draw), oldest write first."""
        if not self._recent:
            return []
        with self._lock:
            self._prune(time.monotonic())
            return [snapshot for _, snapshot in self._recent.values()]

    def view(self, user_id: str) -> UserSnapshot | None:
        """The older state to show for this one read of ``user_id``, or None (current)."""
        if not self._recent:
            return None
        with self._lock:
            self._prune(time.monotonic())
            entry = self._recent.get(user_id)
        if entry is None or not self.faults.read_lags():
            return None
        return entry[1]

    def lagging(self, candidates: list[UserSnapshot]) -> list[UserSnapshot]:
        """Those of ``candidates`` this read shows old (one draw each)."""
        return [s for s in candidates if self.faults.read_lags()]


def matching(
    db: sqlite3.Connection,
    snapshots: list[UserSnapshot],
    condition_sql: str,
    params: tuple[Any, ...],
) -> set[str]:
    """Ids of ``snapshots`` whose state satisfies a users ``WHERE`` condition.

    The condition is the compiled ``$filter`` (and ``$search``) SQL; it runs on a private
    in-memory copy of the users and licenses tables holding only the snapshots.
    """
    if not snapshots:
        return set()
    ddl = [
        r[0]
        for r in db.execute(
            "SELECT sql FROM sqlite_master WHERE type='table' AND name IN ('users', 'licenses')"
        )
    ]
    memory = sqlite3.connect(":memory:")
    try:
        for statement in ddl:
            memory.execute(statement)
        for snapshot in snapshots:
            _insert(memory, "users", snapshot.row)
            for lic in snapshot.licenses:
                _insert(memory, "licenses", lic)
        return {
            r[0]
            for r in memory.execute(f"SELECT users.id FROM users WHERE {condition_sql}", params)
        }  # noqa: S608
    finally:
        memory.close()


def _insert(db: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    columns = list(row)
    db.execute(
        f"INSERT INTO {table}({','.join(columns)}) "  # noqa: S608 - our own names
        f"VALUES({','.join('?' * len(columns))})",
        [row[c] for c in columns],
    )
