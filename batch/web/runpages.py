"""The runs pages: every run (the command line's too), its report, and undoing it.

The list is the journal's (``batch.run.journal.list_runs``), joined with who submitted and
who approved each run in the web app; a run started from the command line shows
``command line`` there.
"""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from batch.run.journal import RunInfo, list_runs
from batch.web.base import render, web
from batch.web.guard import checked_form, signed_in
from batch.web.signin import Identity

__all__ = ["ROUTES"]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def runs_page(request: Request) -> Response:
    user = signed_in(request)
    state = web(request)
    people = state.store.run_people()
    submissions = state.store.list()
    names = {s.run_id: s.file_name for s in submissions if s.run_id}
    # a run still going is found by its sheet (the upload's name is unique)
    by_sheet = {str(Path(s.stored_path).resolve()): s for s in submissions}
    rows = []
    for info in list_runs(state.settings.home):
        sub = by_sheet.get(info.input_path or "")
        default = (sub.submitter, sub.approver) if sub else ("command line", "command line")
        submitter, approver = people.get(info.run_id, default)
        if not user.can_approve and submitter != user.upn:
            continue
        rows.append(
            {
                "info": info,
                "input": names.get(info.run_id)
                or (sub.file_name if sub else "")
                or (Path(info.input_path).name if info.input_path else ""),
                "writes": sum(info.counts.values()),
                "submitter": submitter or "",
                "approver": approver or "",
            }
        )
    started = request.query_params.get("undo")
    note = f"Undo of run {started} started: it is listed here as it runs." if started else None
    return render(request, "runs.html", user, runs=rows, note=note)


def _run(request: Request, user: Identity) -> RunInfo:
    run_id = request.path_params["run_id"]
    info = next((i for i in list_runs(web(request).settings.home) if i.run_id == run_id), None)
    if info is None:
        raise HTTPException(404, "No such run.")
    submitter, _ = web(request).store.run_people().get(run_id, (None, None))
    if not user.can_approve and submitter != user.upn:
        raise HTTPException(403, "This is someone else's run.")
    return info


def run_page(request: Request) -> Response:
    """A run started here opens on its submission; any other run shows its journal."""
    user = signed_in(request)
    info = _run(request, user)
    sub = web(request).store.by_run(info.run_id)
    if sub is not None:
        return RedirectResponse(f"/submissions/{sub.id}", status_code=303)
    return render(request, "run.html", user, info=info)


def report(request: Request) -> Response:
    """The run's workbook, as the command line wrote it."""
    user = signed_in(request)
    info = _run(request, user)
    if not info.report or not Path(info.report).is_file():
        raise HTTPException(404, "This run has no report yet.")
    path = Path(info.report)
    return FileResponse(path, media_type=XLSX, filename=path.name)


async def undo(request: Request) -> Response:
    user = signed_in(request, approve=True)
    await checked_form(request)
    info = _run(request, user)
    web(request).worker.undo(info.run_id, user.upn)
    return RedirectResponse(f"/runs?undo={info.run_id}", status_code=303)


ROUTES = [
    ("/runs", runs_page, ["GET"]),
    ("/runs/{run_id}", run_page, ["GET"]),
    ("/runs/{run_id}/report", report, ["GET"]),
    ("/runs/{run_id}/undo", undo, ["POST"]),
]
