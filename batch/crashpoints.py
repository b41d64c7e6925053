"""Crash points: named places where crash tests may kill the process on purpose.

The journal promises that a run killed at any moment resumes to the same end state. To
test that promise the way SQLite tests its own (a child process that dies in the middle of
a write, then recovery is checked), the places that matter call :func:`crashpoint`. With
``M365BATCH_CRASH_AT=NAME:N`` in the environment, the process kills itself with SIGKILL
the N-th time it reaches the crash point NAME; without it, a crash point costs one
dictionary lookup. Names in use:

- ``journal.write``: inside a journal transaction, before it commits (a torn write);
- ``journal.sent``: an operation is journaled as sent, its request not yet out;
- ``journal.done``: an operation's outcome was journaled;
- ``readback``: every write is done, the read-back has not started;
- ``report.save``: the report's temporary file is written, not yet moved into place.
"""

from __future__ import annotations

import os
import signal
import threading

_ENV = "M365BATCH_CRASH_AT"
_counts: dict[str, int] = {}
_lock = threading.Lock()


def crashpoint(name: str) -> None:
    """Kill this process here if ``M365BATCH_CRASH_AT`` names this point and its count is due."""
    wanted = os.environ.get(_ENV)
    if not wanted:
        return
    point, _, count = wanted.partition(":")
    if point != name:
        return
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        due = _counts[name] >= int(count or 1)
    if due:
        os.kill(os.getpid(), signal.SIGKILL)
