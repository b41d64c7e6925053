"""The web app's background work: running, resuming and undoing runs.

Every step is the library call the command line makes (``onboarding.prepare``, ``apply``,
``resume``, ``batch.jobs.undo``): the page shows the same plan, the journal records the
same run, and the report is the same workbook. Runs go through one background thread, so
a tenant gets one run at a time (the journal's tenant lock refuses any other writer too).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from batch.config import Settings
from batch.graph.client import GraphClient
from batch.graph.engine import EngineStats
from batch.jobs import onboarding
from batch.jobs.undo import apply_undo, prepare_undo
from batch.logs import redact
from batch.run.journal import RunInfo, list_runs
from batch.web.store import DONE, FAILED, INTERRUPTED, RUNNING, SubmissionStore

__all__ = ["Worker"]

log = logging.getLogger(__name__)


def _result(result: onboarding.RunResult) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "report": str(result.report),
        "counts": {str(k): v for k, v in sorted(result.counts.items())},
        "rows": [
            {
                "row": row,
                "user": o.user,
                "status": str(o.status),
                "added": o.added,
                "removed": o.removed,
                "detail": o.reason,
                "verified": "" if o.verified is None else ("Yes" if o.verified else "No"),
            }
            for row, o in sorted(result.outcomes.items())
        ],
    }


class Worker:
    """One background thread that runs the approved work, one job at a time."""

    def __init__(self, settings: Settings, store: SubmissionStore) -> None:
        self.settings = settings
        self.store = store
        #: key (submission id or run id) -> {"done": n, "total": m}
        self.progress: dict[str, dict[str, int]] = {}
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="web-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception:
                log.exception("web: a background job failed")

    def _tracker(self, key: str, total: int) -> Callable[[EngineStats], None]:
        self.progress[key] = {"done": 0, "total": total}

        def update(stats: EngineStats) -> None:
            entry = self.progress[key]
            entry["done"] = max(entry["done"], stats.finished)
            entry["total"] = max(entry["total"], stats.operations, entry["done"])

        return update

    def recover(self) -> None:
        """After a restart: a submission left running is interrupted (its run resumable)."""
        for sub in self.store.list(status=RUNNING):
            run_id = sub.run_id or self._run_of(sub.stored_path)
            self.store.update(sub.id, status=INTERRUPTED, run_id=run_id)

    def _run_of(self, stored_path: str) -> str | None:
        """The run whose journal names this upload (its name is unique)."""
        target = str(Path(stored_path).resolve())
        for info in list_runs(self.settings.home):
            if info.input_path == target:
                return info.run_id
        return None

    def run_info(self, run_id: str | None) -> RunInfo | None:
        """What the journal says of a run (state, operations per state)."""
        return next((i for i in list_runs(self.settings.home) if i.run_id == run_id), None)

    def approve(self, sid: str, approver: str) -> None:
        """Run an approved submission: plan again from the tenant's state, then apply."""
        self.store.update(sid, status=RUNNING, approver=approver)
        self._jobs.put(lambda: self._apply(sid))

    def _apply(self, sid: str) -> None:
        sub = self.store.get(sid)
        if sub is None:
            return
        try:
            with closing(GraphClient(self.settings)) as client:
                stored = Path(sub.stored_path)
                prepared = onboarding.prepare(client, stored, onboarding.RunOptions())
                onboarding.check_removals(prepared.plan, None)
                track = self._tracker(sid, len(prepared.plan.ops))
                meta = {"submitted_by": sub.submitter, "approved_by": sub.approver}
                result = onboarding.apply(
                    client, self.settings, prepared, on_progress=track, meta=meta
                )
            self.store.set_run_people(result.run_id, sub.submitter, sub.approver)
            self.store.update(sid, status=DONE, run_id=result.run_id, result=_result(result))
        except Exception as exc:
            log.exception("web: run of submission %s failed", sid)
            run_id = self._run_of(sub.stored_path)
            self.store.update(sid, status=FAILED, run_id=run_id, reason=redact(str(exc)))

    def resume(self, sid: str, approver: str) -> None:
        """Finish an interrupted submission's run from its journal."""
        sub = self.store.get(sid)
        if sub is None:
            return
        if not sub.run_id:  # stopped before its run began: start it now
            self.approve(sid, sub.approver or approver)
            return
        run_id = sub.run_id
        self.store.update(sid, status=RUNNING)

        def job() -> None:
            try:
                track = self._tracker(sid, 0)
                with closing(GraphClient(self.settings)) as client:
                    result = onboarding.resume(client, self.settings, run_id, on_progress=track)
                self.store.set_run_people(result.run_id, sub.submitter, sub.approver or approver)
                self.store.update(sid, status=DONE, result=_result(result))
            except Exception as exc:
                log.exception("web: resume of %s failed", run_id)
                self.store.update(sid, status=INTERRUPTED, reason=redact(str(exc)))

        self._jobs.put(job)

    def undo(self, run_id: str, approver: str) -> None:
        """Revert a run: its undo sheet planned and applied like any run."""

        def job() -> None:
            try:
                with closing(GraphClient(self.settings)) as client:
                    _, prepared = prepare_undo(client, self.settings, run_id)
                    track = self._tracker(f"undo-{run_id}", len(prepared.plan.ops))
                    result = apply_undo(client, self.settings, run_id, prepared, on_progress=track)
                self.store.set_run_people(result.run_id, approver, approver)
            except Exception:
                log.exception("web: undo of %s failed", run_id)

        self._jobs.put(job)
