"""Run history: what past runs did, read back from their journals.

Shared by the jobs that look back at a run: ``resume`` (which run, and may it continue),
``undo`` (what a run and its parts carried out) and the migration's group switch (the kind
of write that changes a group's license).
"""

from __future__ import annotations

from pathlib import Path

from batch.errors import JournalError
from batch.run.execute import result_ok
from batch.run.journal import FINISHED, Journal, JournalOp, file_sha256, latest_unfinished

__all__ = ["GROUP_ASSIGN", "changed_kinds", "done_ops", "open_resumable"]

#: the PlannedOp kind of a group's assignLicense (group-based licensing)
GROUP_ASSIGN = "groupAssignLicense"


def done_ops(home: Path, run_id: str) -> list[JournalOp]:
    """The journaled operations a run (and its ``parts``) carried out successfully."""
    with Journal.open(home, run_id) as journal:
        ops = [op for op in journal.ops("done") if result_ok(op.result or {})]
        parts = [str(p) for p in journal.get("parts") or []]
    for part in parts:
        with Journal.open(home, part) as journal:
            ops += [op for op in journal.ops("done") if result_ok(op.result or {})]
    return ops


def changed_kinds(home: Path, run_id: str) -> set[str]:
    """The kinds of the writes a run (and its parts) carried out: tells undo what to revert."""
    return {str(op.payload.get("kind")) for op in done_ops(home, run_id)}


def open_resumable(home: Path, run_id: str | None, tenant_id: str | None) -> Journal:
    """Open the journal of the run to resume (default: the latest unfinished one).

    Refused, with what to do instead, when the run finished, has no input sheet, was made on
    another tenant, or its input is gone or changed. The caller closes the journal.
    """
    run_id = run_id or latest_unfinished(home)
    if run_id is None:
        raise JournalError("No unfinished run to resume.", hint="See `m365batch runs`.")
    journal = Journal.open(home, run_id)
    try:
        _check_resumable(journal, run_id, tenant_id)
    except BaseException:
        journal.close()
        raise
    return journal


def _check_resumable(journal: Journal, run_id: str, tenant_id: str | None) -> None:
    if journal.get("state") == FINISHED:
        raise JournalError(
            f"Run {run_id} already finished.", hint="See its report, or `m365batch runs`."
        )
    if not journal.get("input_path"):
        raise JournalError(
            f"Run {run_id} ({journal.get('kind')}) has no input sheet to resume from.",
            hint="Run the command that started it again (e.g. `m365batch migrate --groups`): "
            "it reads the tenant's state and continues.",
        )
    if journal.get("tenant") != tenant_id:
        raise JournalError(f"Run {run_id} was made on another tenant ({journal.get('tenant')}).")
    path = Path(str(journal.get("input_path")))
    if not path.is_file():
        raise JournalError(
            f"Run {run_id}: its input {path} is gone.", hint="Put the file back to resume."
        )
    if file_sha256(path) != journal.get("input_sha256"):
        raise JournalError(
            f"Run {run_id}: {path.name} changed since the run started.",
            hint="Resume needs the same file; to apply the new one, start a new run with `apply`.",
        )
