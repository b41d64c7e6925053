"""Run history: what past runs did, read back from their journals.

Shared by the jobs that look back at a run: ``resume`` (which run, and may it continue),
``undo`` (what a run and its parts carried out) and the migration's group switch (the kind
of write that changes a group's license).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from batch.errors import ExitCode, JournalError
from batch.graph.client import GraphClient
from batch.run.execute import result_ok, settle
from batch.run.journal import (
    ABANDONED,
    DAMAGED,
    FINISHED,
    INTERRUPTED,
    RUNNING,
    Journal,
    JournalOp,
    file_sha256,
    list_runs,
    run_holder,
    tenant_lock,
)

__all__ = [
    "GROUP_ASSIGN",
    "ResumeChoice",
    "abandon",
    "changed_kinds",
    "done_ops",
    "later_runs",
    "open_resumable",
    "pick_resumable",
    "report_place",
    "resuming",
    "settle_run",
]

#: the PlannedOp kind of a group's assignLicense (group-based licensing)
GROUP_ASSIGN = "groupAssignLicense"


def run_and_parts(home: Path, run_id: str) -> list[str]:
    """The run's id and the ids of its ``parts`` (a migration's waves, each a run)."""
    with Journal.open(home, run_id) as journal:
        return [run_id, *(str(p) for p in journal.get("parts") or [])]


def report_place(home: Path, run_id: str) -> tuple[Path, Path | None] | None:
    """Where a report about run ``run_id`` goes (its resume's, its undo's), and the input
    that names it: next to the run's report, else next to its input file.

    People look for reports beside their own files, never in the data folder: a sheet the
    product wrote there (an undo sheet, a migration's wave) does not count, and an undo
    run's reports go where those of the run it undid went. None when nothing is known (or
    the folder is gone).
    """
    try:
        with Journal.open(home, run_id) as journal:
            values = {k: journal.get(k) for k in ("report", "output", "input_path", "undo_of")}
    except JournalError:
        return None
    reports = [Path(str(values[k])) for k in ("report", "output") if values[k]]
    folder = next((p.parent for p in reports if p.is_absolute() and p.parent.is_dir()), None)
    source = Path(str(values["input_path"])) if values["input_path"] else None
    if source is not None and source.resolve().is_relative_to(home.resolve()):
        source = None
    undone = values["undo_of"]
    if undone and undone != run_id:
        place = report_place(home, str(undone))
        if place is not None:
            folder, source = folder or place[0], source or place[1]
    if folder is None and source is not None and source.parent.is_dir():
        folder = source.parent
    return (folder, source) if folder is not None else None


def done_ops(home: Path, run_id: str) -> list[JournalOp]:
    """The journaled operations a run (and its ``parts``) carried out successfully.

    Refused while any of them is unsettled (sent, answer lost, the tenant not read since):
    what it did is not known, and an undo computed from it would miss changes.
    """
    ops: list[JournalOp] = []
    unsettled: list[JournalOp] = []
    for part in run_and_parts(home, run_id):
        with Journal.open(home, part) as journal:
            ops += [op for op in journal.ops("done") if result_ok(op.result or {})]
            unsettled += journal.unsettled()
    if unsettled:
        keys = ", ".join(op.key for op in unsettled[:3]) + (" ..." if len(unsettled) > 3 else "")
        raise JournalError(
            f"Run {run_id} has {len(unsettled)} operation(s) whose answer was lost and that "
            f"no read of the tenant has settled yet ({keys}).",
            hint=f"Run `m365batch undo {run_id}` again once the tenant can be read (it reads "
            f"them first), or `m365batch resume {run_id}` if the run is unfinished.",
        )
    return ops


def settle_run(client: GraphClient, home: Path, tenant: str, run_id: str) -> int:
    """Settle the lost answers of a run and its parts by reading the tenant; how many remain.

    Under the tenant's write lock, so a run still writing is never second-guessed.
    """
    remaining = 0
    for part in run_and_parts(home, run_id):
        with Journal.open(home, part) as journal:
            if not journal.to_settle():
                continue
            with tenant_lock(home, tenant, part):
                remaining += len(settle(client, journal).unsettled)
    return remaining


def changed_kinds(home: Path, run_id: str) -> set[str]:
    """The kinds of the writes a run (and its parts) carried out: tells undo what to revert."""
    return {str(op.payload.get("kind")) for op in done_ops(home, run_id)}


class ResumeChoice(JournalError):
    """A bare ``resume`` cannot tell which run to continue: the candidates are listed."""

    exit_code = ExitCode.USAGE


def pick_resumable(home: Path, tenant_id: str | None) -> str:
    """The run a bare ``resume`` continues: the newest interrupted one on this tenant.

    Only when no later run (finished or not, or a damaged journal that may be one) touched
    the tenant since; otherwise the candidates are listed and the user names one.
    """
    runs = list_runs(home)
    mine = [r for r in runs if r.tenant == tenant_id or r.state == DAMAGED]
    candidates = [r for r in mine if r.state == INTERRUPTED and r.input_path]
    if not candidates:
        others = [r.run_id for r in runs if r.state == INTERRUPTED]
        raise JournalError(
            "No unfinished run on this tenant to resume.",
            hint=(
                f"Unfinished runs on other tenants: {', '.join(others)}; close one that should "
                "not be finished with `m365batch abandon RUN`."
                if others
                else "See `m365batch runs`."
            ),
        )
    newest = candidates[0]
    later = mine[: mine.index(newest)]
    if later:
        listed = "; ".join(f"{r.run_id} ({r.kind}, {r.state})" for r in candidates)
        after = ", ".join(f"{r.run_id} ({r.kind}, {r.state})" for r in later)
        raise ResumeChoice(
            f"Not resuming on a guess: run {after} touched this tenant after the newest "
            f"unfinished run. Unfinished runs: {listed}.",
            hint="Name the run to resume (`m365batch resume RUN`, it asks first), or close it "
            "with `m365batch abandon RUN`.",
        )
    return newest.run_id


def later_runs(home: Path, run_id: str, tenant_id: str | None) -> list[str]:
    """Finished runs on the same tenant that started after ``run_id``: a resume may undo them."""
    runs = list_runs(home)
    ids = [r.run_id for r in runs]
    if run_id not in ids:
        return []
    return [
        r.run_id for r in runs[: ids.index(run_id)] if r.tenant == tenant_id and r.state == FINISHED
    ]


def open_resumable(home: Path, run_id: str | None, tenant_id: str | None) -> Journal:
    """Open the journal of the run to resume (default: see :func:`pick_resumable`).

    Refused, with what to do instead, when the run finished, was abandoned, is running,
    has no input sheet, was made on another tenant, or its input is gone or changed, or its
    journal is damaged. The caller closes the journal.
    """
    run_id = run_id or pick_resumable(home, tenant_id)
    try:
        journal = Journal.open(home, run_id)
    except JournalError as exc:
        if "damaged" in str(exc) or "format" in str(exc):
            raise JournalError(
                f"Run {run_id} cannot be resumed: {exc.message.rstrip('.')}.",
                hint="Its writes cannot be known from it: check the tenant with `m365batch "
                "export`, then start a new run with `apply`.",
            ) from exc
        raise
    try:
        _check_resumable(journal, run_id, tenant_id)
    except BaseException:
        journal.close()
        raise
    return journal


@contextmanager
def resuming(
    client: GraphClient, home: Path, run_id: str | None, tenant_id: str | None
) -> Iterator[tuple[Journal, list[str]]]:
    """The journal of the run to resume, under the tenant's and the run's locks, its lost
    answers settled by reading the tenant; and the later finished runs it may undo."""
    with (
        open_resumable(home, run_id, tenant_id) as journal,
        tenant_lock(home, str(tenant_id), journal.run_id),
    ):
        later = later_runs(home, journal.run_id, tenant_id)
        # done ones keep what they changed (their payloads are not planned again)
        settle(client, journal)
        yield journal, later


def _check_resumable(journal: Journal, run_id: str, tenant_id: str | None) -> None:
    state = journal.state
    if state == FINISHED:
        raise JournalError(
            f"Run {run_id} already finished.", hint="See its report, or `m365batch runs`."
        )
    if state == ABANDONED:
        raise JournalError(
            f"Run {run_id} was abandoned: it is not resumed.",
            hint=f"`m365batch undo {run_id}` reverts what it did; `apply` starts a new run.",
        )
    if state == RUNNING:
        raise JournalError(
            f"Run {run_id} is running right now ({run_holder(journal.folder)}).",
            hint="Wait for it to finish; `m365batch runs` shows its state.",
        )
    if not journal.get("input_path"):
        raise JournalError(
            f"Run {run_id} ({journal.get('kind')}) has no input sheet to resume from.",
            hint="Run the command that started it again (e.g. `m365batch migrate --groups`): "
            "it reads the tenant's state and continues.",
        )
    if journal.get("tenant") != tenant_id:
        raise JournalError(
            f"Run {run_id} was made on another tenant ({journal.get('tenant')}).",
            hint=f"Close it with `m365batch abandon {run_id}` if it should not be finished.",
        )
    path = Path(str(journal.get("input_path")))
    if not path.is_file():
        raise JournalError(
            f"Run {run_id}: its input {path} is gone.",
            hint="Put the file back to resume, or close the run with "
            f"`m365batch abandon {run_id}`.",
        )
    if file_sha256(path) != journal.get("input_sha256"):
        raise JournalError(
            f"Run {run_id}: {path.name} changed since the run started.",
            hint="Resume needs the same file (put it back), or close the run with "
            f"`m365batch abandon {run_id}` and apply the new one.",
        )


def abandon(client: GraphClient, home: Path, tenant: str, run_id: str) -> int:
    """Close an unfinished run that should not be finished; its lost answers settled first.

    Its journal and what it did stay (``undo`` still works); it is never resumed. Returns
    how many operations stay unsettled (the tenant could not be read for them).
    """
    with Journal.open(home, run_id) as journal:
        state = journal.state
        if state in (FINISHED, ABANDONED):
            raise JournalError(f"Run {run_id} is already {state}.")
        if state == RUNNING:
            raise JournalError(
                f"Run {run_id} is running right now ({run_holder(journal.folder)}).",
                hint="Stop it (Ctrl-C) first; then abandon it.",
            )
        remaining = 0
        if journal.get("tenant") == tenant and journal.to_settle():
            with tenant_lock(home, tenant, run_id):
                remaining = len(settle(client, journal).unsettled)
        journal.finish(ABANDONED)
        return remaining
