"""Journal: every run's operations, recorded before and after they are sent.

Graph has no idempotency keys, so exactly-once *effect* comes from desired state plus this
journal. Each run has a folder ``M365BATCH_HOME/runs/<run-id>/`` holding ``journal.sqlite``
(SQLite in WAL mode, ``synchronous=FULL``: a record is on disk before the next request
goes out; the records of one ``$batch`` share a transaction, :meth:`Journal.transaction`,
so a run syncs once a batch, not once an operation). The states of an operation::

    planned --(sent)--> sent --(answer)--> done
                          \\--(no answer: timeout, reset, 504, killed)--> still "sent"
                                   --(settled: the tenant read)--> done, or planned again

An operation left in ``sent`` has an unknown outcome: it is *unsettled*. Settling reads the
tenant (:func:`batch.run.execute.settle`, on resume and at the end of every run) and
records it as done (the effect is in place) or planned again (not in effect). On resume,
``pending()`` is planned minus done; undo is computed from done operations only, so it
refuses a run with unsettled operations.

A run is tied to its input by SHA-256 (a resume with a changed file is refused) and holds a
per-tenant lock while it writes (a second apply on the same tenant is refused). The journal
is stamped with ``FORMAT_VERSION``; readers of older formats belong here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import socket
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock

from batch.crashpoints import crashpoint
from batch.errors import JournalError
from batch.files import PRIVATE_DIR, PRIVATE_FILE, private_dir, private_file

FORMAT_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ops (
    seq INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    row INTEGER,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'planned',
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_at TEXT,
    done_at TEXT,
    result TEXT
);
CREATE INDEX IF NOT EXISTS ops_state ON ops(state);
"""

#: run states kept in meta['state']
RUNNING, FINISHED, INTERRUPTED = "running", "finished", "interrupted"
#: closed without finishing (``m365batch abandon``): never resumed, still undoable
ABANDONED = "abandoned"
#: listed for a journal that cannot be read
DAMAGED = "damaged"
#: held by the process running a run; a run marked running whose lock is free is interrupted
RUN_LOCK = "run.lock"


@dataclass(frozen=True)
class RunInfo:
    """What ``runs`` lists about one past run."""

    run_id: str
    kind: str
    state: str
    created: str
    finished: str | None
    input_path: str | None
    input_sha256: str | None
    tenant: str | None
    counts: dict[str, int]
    report: str | None
    #: operations sent at least once
    sent: int = 0
    #: the run an undo run undoes
    undo_of: str | None = None

    @property
    def unsettled(self) -> int:
        """Operations sent whose answer was lost and that no read of the tenant settled."""
        return self.counts.get("sent", 0)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for ``runs --json``)."""
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "state": self.state,
            "created": self.created,
            "finished": self.finished,
            "input": self.input_path,
            "input_sha256": self.input_sha256,
            "tenant": self.tenant,
            "operations": self.counts,
            "sent": self.sent,
            "done": self.counts.get("done", 0),
            "unsettled": self.unsettled,
            "report": self.report,
            "undo_of": self.undo_of,
        }


@dataclass(frozen=True)
class JournalOp:
    """One journaled operation: its key, Excel row, payload and where it stands."""

    seq: int
    key: str
    row: int | None
    payload: dict[str, Any]
    state: str
    attempts: int
    result: dict[str, Any] | None
    sent_at: str | None = None
    done_at: str | None = None


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: its journal is marked interrupted, and says which run it was."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def new_run_id(now: dt.datetime | None = None) -> str:
    """A sortable, unique run id such as ``20261128-091502-3fa2``."""
    now = now or dt.datetime.now()
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def runs_dir(home: Path) -> Path:
    """The folder that holds one sub-folder per run."""
    return home / "runs"


class Journal:
    """The journal of one run. Open with :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        self._grouped = False
        self._passed: list[str] = []  # crash points passed in the transaction under way

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        home: Path,
        *,
        kind: str,
        tenant: str,
        input_path: Path | None = None,
        input_sha256: str | None = None,
        meta: dict[str, Any] | None = None,
        run_id: str | None = None,
    ) -> Journal:
        """Start a new run's journal."""
        run_id = run_id or new_run_id()
        folder = runs_dir(home) / run_id
        try:
            private_dir(home)
            private_dir(runs_dir(home))
            folder.mkdir(mode=PRIVATE_DIR)
            # created owner-only; SQLite gives its -wal and -shm files the same mode
            private_file(folder / "journal.sqlite")
        except OSError as exc:
            raise JournalError(f"Cannot create the journal in {folder}: {exc}") from exc
        journal = cls._connect(folder / "journal.sqlite")
        now = _now()
        values = {
            "format_version": FORMAT_VERSION,
            "run_id": run_id,
            "kind": kind,
            "tenant": tenant,
            "state": RUNNING,
            "created": now,
            "input_path": str(input_path) if input_path else None,
            "input_sha256": input_sha256,
            **(meta or {}),
        }
        with journal._db:
            journal._db.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in values.items()],
            )
        return journal

    @classmethod
    def open(cls, home: Path, run_id: str) -> Journal:
        """Open an existing run's journal."""
        path = runs_dir(home) / run_id / "journal.sqlite"
        if not path.is_file():
            raise JournalError(
                f"No run '{run_id}' in {runs_dir(home)}.", hint="See `m365batch runs`."
            )
        journal = cls._connect(path)
        version = journal.get("format_version")
        if version != FORMAT_VERSION:
            raise JournalError(
                f"Run '{run_id}' was written in journal format {version}, "
                "which this version cannot read."
            )
        return journal

    @classmethod
    def _connect(cls, path: Path) -> Journal:
        try:
            connection = sqlite3.connect(
                path, timeout=30, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"The journal {path} is damaged: {exc}") from exc
        connection.isolation_level = "DEFERRED"
        return cls(path, connection)

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- metadata ------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return str(self.get("run_id"))

    @property
    def folder(self) -> Path:
        return self.path.parent

    def get(self, key: str, default: Any = None) -> Any:
        """A metadata value (JSON-decoded)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set(self, **values: Any) -> None:
        """Store metadata values (JSON-encoded), durably."""
        with self._db:
            self._db.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    def finish(self, state: str = FINISHED, **values: Any) -> None:
        """Mark the run finished (or interrupted) with optional final metadata."""
        self.set(state=state, finished=_now(), **values)

    # -- operations ----------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Write the records made inside as one transaction: one sync to disk for a batch's
        twenty, not twenty. They are on disk when it ends (before the batch is sent), and
        kept when what it wraps fails: each says what was true when it was made."""
        if self._grouped:
            yield
            return
        self._grouped, self._passed = True, []
        try:
            yield
        finally:
            self._grouped = False
            self._db.commit()
            for point in self._passed:
                crashpoint(point)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        if self._grouped:
            yield
        else:
            with self._db:
                yield

    def _pass(self, point: str) -> None:
        """A crash point reached once the record is on disk: at the transaction's end."""
        if self._grouped:
            self._passed.append(point)
        else:
            crashpoint(point)

    def add_ops(self, ops: Iterable[tuple[str, int | None, dict[str, Any]]]) -> None:
        """Record planned operations as ``(key, excel_row, payload)``, in order.

        An operation already journaled and not done takes the new payload (a resumed run
        re-plans from the tenant's current state); one already done is left as it is.
        """
        with self._db:
            self._db.executemany(
                "INSERT INTO ops(key, row, payload) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET payload = excluded.payload WHERE state != 'done'",
                ((key, row, json.dumps(payload)) for key, row, payload in ops),
            )

    def mark_sent(self, key: str) -> None:
        """Record that an operation is about to go out (before the request is sent)."""
        with self._writing():
            cursor = self._db.execute(
                "UPDATE ops SET state = CASE WHEN state = 'done' THEN 'done' ELSE 'sent' END, "
                "attempts = attempts + 1, sent_at = ? WHERE key = ?",
                (_now(), key),
            )
            crashpoint("journal.write")
        self._pass("journal.sent")
        if cursor.rowcount != 1:
            raise JournalError(f"Operation '{key}' is not in the journal of run {self.run_id}.")

    def mark_done(self, key: str, result: dict[str, Any]) -> None:
        """Record an operation's final outcome."""
        with self._writing():
            cursor = self._db.execute(
                "UPDATE ops SET state = 'done', done_at = ?, result = ? WHERE key = ?",
                (_now(), json.dumps(result), key),
            )
            crashpoint("journal.write")
        self._pass("journal.done")
        if cursor.rowcount != 1:
            raise JournalError(f"Operation '{key}' is not in the journal of run {self.run_id}.")

    def mark_not_done(self, key: str) -> None:
        """Record that a sent operation is not in effect (the tenant was read): send it again."""
        with self._db:
            self._db.execute(
                "UPDATE ops SET state = 'planned', result = NULL WHERE key = ? AND state != 'done'",
                (key,),
            )

    def to_settle(self) -> list[JournalOp]:
        """Operations sent at least once and not known done: the tenant says how they ended."""
        return [op for op in self.ops() if op.state != "done" and op.attempts]

    def unsettled(self) -> list[JournalOp]:
        """Operations sent whose answer never came and that no read of the tenant settled."""
        return list(self.ops("sent"))

    def ops(self, state: str | None = None) -> Iterator[JournalOp]:
        """Journaled operations in planned order, optionally only those in ``state``."""
        query = "SELECT seq, key, row, payload, state, attempts, result, sent_at, done_at FROM ops"
        args: tuple[Any, ...] = ()
        if state:
            query += " WHERE state = ?"
            args = (state,)
        for seq, key, row, payload, op_state, attempts, result, sent_at, done_at in list(
            self._db.execute(query + " ORDER BY seq", args)
        ):
            yield JournalOp(
                seq,
                key,
                row,
                json.loads(payload),
                op_state,
                attempts,
                json.loads(result) if result else None,
                sent_at,
                done_at,
            )

    def pending(self) -> list[JournalOp]:
        """Operations not yet done: planned, or sent with an unknown outcome."""
        return [op for op in self.ops() if op.state != "done"]

    def counts(self) -> dict[str, int]:
        """How many operations are in each state."""
        return dict(self._db.execute("SELECT state, COUNT(*) FROM ops GROUP BY state").fetchall())

    def info(self) -> RunInfo:
        """A summary of this run for ``runs``."""
        return RunInfo(
            run_id=self.run_id,
            kind=str(self.get("kind")),
            state=self.state,
            created=str(self.get("created")),
            finished=self.get("finished"),
            input_path=self.get("input_path"),
            input_sha256=self.get("input_sha256"),
            tenant=self.get("tenant"),
            counts=self.counts(),
            report=self.get("report"),
            sent=int(self._db.execute("SELECT COUNT(*) FROM ops WHERE attempts > 0").fetchone()[0]),
            undo_of=self.get("undo_of"),
        )

    @property
    def state(self) -> str:
        """The run's state; ``running`` only while a live process holds the run's lock."""
        state = str(self.get("state"))
        if state == RUNNING and run_holder(self.folder) is None:
            return INTERRUPTED
        return state


def list_runs(home: Path) -> list[RunInfo]:
    """Every run under ``home``, newest first; a journal that cannot be read is ``damaged``."""
    folder = runs_dir(home)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob("*/journal.sqlite"):
        try:
            with Journal.open(home, path.parent.name) as journal:
                found.append(journal.info())
        except (JournalError, sqlite3.Error, ValueError, TypeError) as exc:
            found.append(_damaged(path, exc))
    # by creation time (milliseconds): two runs can start within the same second
    return sorted(found, key=lambda info: (info.created, info.run_id), reverse=True)


def _damaged(path: Path, exc: Exception) -> RunInfo:
    created = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    return RunInfo(
        run_id=path.parent.name,
        kind="?",
        state=DAMAGED,
        created=created.isoformat(timespec="milliseconds"),
        finished=None,
        input_path=None,
        input_sha256=None,
        tenant=None,
        counts={},
        report=f"cannot read the journal: {exc}",
    )


@contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Hold a run's lock while a process works on it (its pid and host written beside it)."""
    lock = filelock.FileLock(str(folder / RUN_LOCK), timeout=0, mode=PRIVATE_FILE)
    try:
        lock.acquire()
    except filelock.Timeout as exc:
        raise JournalError(
            f"Run {folder.name} is running right now ({run_holder(folder) or 'another process'}).",
            hint="Wait for it to finish; `m365batch runs` shows its state.",
        ) from exc
    try:
        private_file(folder / "run.holder").write_text(
            f"pid {os.getpid()} on {socket.gethostname()}", encoding="utf-8"
        )
        yield
    finally:
        lock.release()


def run_holder(folder: Path) -> str | None:
    """Who holds a run's lock ("pid 123 on host"), or None when no live process does."""
    if not (folder / RUN_LOCK).exists():
        return None
    lock = filelock.FileLock(str(folder / RUN_LOCK), timeout=0, mode=PRIVATE_FILE)
    try:
        lock.acquire()
    except filelock.Timeout:
        holder = folder / "run.holder"
        return holder.read_text(encoding="utf-8").strip() if holder.exists() else "a process"
    lock.release()
    return None


@contextmanager
def tenant_lock(home: Path, tenant: str, run_id: str) -> Iterator[None]:
    """Hold the per-tenant write lock for the length of a run; refuse a second writer.

    The run's own lock (:func:`run_lock`) is held with it: ``runs`` shows the run running.
    """
    private_dir(home)
    locks = private_dir(home / "locks")
    safe = hashlib.sha256(tenant.encode()).hexdigest()[:16]
    holder = locks / f"tenant-{safe}.holder"
    lock = filelock.FileLock(str(locks / f"tenant-{safe}.lock"), timeout=0, mode=PRIVATE_FILE)
    try:
        lock.acquire()
    except filelock.Timeout as exc:
        other = holder.read_text(encoding="utf-8").strip() if holder.exists() else "another run"
        raise JournalError(
            f"Another run ({other}) is writing to this tenant right now.",
            hint="Wait for it to finish, then `m365batch resume` or run again.",
        ) from exc
    try:
        private_file(holder).write_text(f"run {run_id}, pid {os.getpid()}", encoding="utf-8")
        folder = runs_dir(home) / run_id
        with run_lock(folder) if folder.is_dir() else nullcontext():
            yield
    finally:
        lock.release()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
