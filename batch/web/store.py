"""The web app's durable state: submissions and their decisions, in SQLite under the home.

A submission is an uploaded sheet (stored under a generated name) with the check it got,
who submitted it, and what became of it::

    checked -> waiting -> approved -> running -> done
                       -> rejected             -> interrupted -> running (resumed)

Runs themselves live in their journals (``batch.run.journal``); a submission names its run
once the run has started, so the runs page joins the two.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Submission", "SubmissionStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    id TEXT PRIMARY KEY,
    file_name TEXT NOT NULL,
    stored_path TEXT NOT NULL,
    submitter TEXT NOT NULL,
    created TEXT NOT NULL,
    status TEXT NOT NULL,
    check_json TEXT NOT NULL,
    approver TEXT,
    decided TEXT,
    reason TEXT,
    run_id TEXT,
    result_json TEXT
);
CREATE TABLE IF NOT EXISTS run_people (
    run_id TEXT PRIMARY KEY,
    submitter TEXT,
    approver TEXT
);
"""

CHECKED, WAITING, REJECTED = "checked", "waiting", "rejected"
APPROVED, RUNNING, DONE, INTERRUPTED, FAILED = (
    "approved",
    "running",
    "done",
    "interrupted",
    "failed",
)


@dataclass
class Submission:
    """One uploaded sheet and its way through check, approval and run."""

    id: str
    file_name: str
    stored_path: str
    submitter: str
    created: str
    status: str
    check: dict[str, Any]
    approver: str | None = None
    decided: str | None = None
    reason: str | None = None
    run_id: str | None = None
    result: dict[str, Any] | None = None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class SubmissionStore:
    """Submissions in ``home/web/web.sqlite`` (folder 0700, file 0600)."""

    def __init__(self, home: Path) -> None:
        self.folder = home / "web"
        self.uploads = self.folder / "uploads"
        self.uploads.mkdir(parents=True, exist_ok=True, mode=0o700)
        for folder in (self.folder, self.uploads):
            os.chmod(folder, 0o700)
        path = self.folder / "web.sqlite"
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def save_upload(self, data: bytes, suffix: str) -> Path:
        """Keep an uploaded sheet under a generated name (nothing of the user's), mode 0600."""
        path = self.uploads / f"{uuid.uuid4().hex}{suffix}"
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return path

    def add(self, file_name: str, stored: Path, submitter: str, check: dict[str, Any]) -> str:
        sid = uuid.uuid4().hex[:12]
        with self._lock:
            self._db.execute(
                "INSERT INTO submissions (id, file_name, stored_path, submitter, created, "
                "status, check_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sid, file_name, str(stored), submitter, _now(), CHECKED, json.dumps(check)),
            )
        return sid

    def get(self, sid: str) -> Submission | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM submissions WHERE id = ?", (sid,)).fetchone()
        return _submission(row) if row else None

    def list(self, *, status: str | None = None, submitter: str | None = None) -> list[Submission]:
        query, args = "SELECT * FROM submissions WHERE 1 = 1", list[str]()
        if status:
            query, args = query + " AND status = ?", [*args, status]
        if submitter:
            query, args = query + " AND submitter = ?", [*args, submitter]
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created DESC, id", args).fetchall()
        return [_submission(r) for r in rows]

    def update(self, sid: str, **values: Any) -> None:
        """Set columns of one submission (``check``/``result`` are stored as JSON)."""
        columns = {
            ("check_json" if k == "check" else "result_json" if k == "result" else k): (
                json.dumps(v) if k in ("check", "result") else v
            )
            for k, v in values.items()
        }
        if "status" in values and values["status"] in (APPROVED, REJECTED):
            columns["decided"] = _now()
        assignments = ", ".join(f"{name} = ?" for name in columns)
        with self._lock:
            self._db.execute(
                f"UPDATE submissions SET {assignments} WHERE id = ?", [*columns.values(), sid]
            )

    def set_run_people(self, run_id: str, submitter: str | None, approver: str | None) -> None:
        """Who asked for a run and who approved it (undo and resume runs included)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO run_people (run_id, submitter, approver) VALUES (?, ?, ?)",
                (run_id, submitter, approver),
            )

    def run_people(self) -> dict[str, tuple[str | None, str | None]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM run_people").fetchall()
        return {r["run_id"]: (r["submitter"], r["approver"]) for r in rows}

    def by_run(self, run_id: str) -> Submission | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM submissions WHERE run_id = ?", (run_id,)
            ).fetchone()
        return _submission(row) if row else None


def _submission(row: sqlite3.Row) -> Submission:
    return Submission(
        id=row["id"],
        file_name=row["file_name"],
        stored_path=row["stored_path"],
        submitter=row["submitter"],
        created=row["created"],
        status=row["status"],
        check=json.loads(row["check_json"]),
        approver=row["approver"],
        decided=row["decided"],
        reason=row["reason"],
        run_id=row["run_id"],
        result=json.loads(row["result_json"]) if row["result_json"] else None,
    )
