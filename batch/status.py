"""The one vocabulary of row statuses, shared by every stage, report and command.

A :class:`RowStatus` is a ``str``, so it is written to workbooks, journals and JSON as the
word a person reads (``Applied``, ``NoChange``, ...); code compares members, never literals.
"""

from __future__ import annotations

import enum

__all__ = ["SETTLED_BAD", "STATUS_ORDER", "RowStatus"]


class RowStatus(enum.StrEnum):
    """Where one input row ended (or stands, before a run)."""

    READY = "Ready"  #: valid, not planned yet (validation only)
    PLANNED = "Planned"  #: a change is planned (plan, or a run not finished)
    APPLIED = "Applied"  #: the change was written
    NO_CHANGE = "NoChange"  #: the tenant already is as asked
    INVALID = "Invalid"  #: the row cannot be understood or is not allowed
    FAILED = "Failed"  #: Graph refused the change, or it could not be made
    DEFERRED = "Deferred"  #: dated in the future, or waiting (seats)
    SKIPPED = "Skipped"  #: left out on purpose (another row for the same user, a guard)


#: the order statuses are counted and shown in
STATUS_ORDER: tuple[RowStatus, ...] = (
    RowStatus.APPLIED,
    RowStatus.NO_CHANGE,
    RowStatus.PLANNED,
    RowStatus.INVALID,
    RowStatus.FAILED,
    RowStatus.DEFERRED,
    RowStatus.SKIPPED,
)

#: statuses that make a finished run exit 3 ("some rows are invalid, failed or deferred")
SETTLED_BAD: frozenset[RowStatus] = frozenset(
    {RowStatus.INVALID, RowStatus.FAILED, RowStatus.DEFERRED}
)
