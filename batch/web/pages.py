"""The submitter's and approver's pages: upload, check, submit, approve or reject, progress.

upload (Sheet, Check sheet) -> check result (Problems, Plan, Submit for approval)
-> Waiting for approval -> Approvals -> Approve and apply | Reject (with a reason)
-> the run: progress bar, then the rows, Download report, Undo this run
"""

from __future__ import annotations

from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from batch.errors import BatchError
from batch.logs import redact
from batch.web.base import render, web
from batch.web.guard import MAX_UPLOAD, checked_form, signed_in
from batch.web.sheets import check_sheet, plan_workbook, tenant_template
from batch.web.signin import Identity
from batch.web.store import (
    APPROVED,
    CHECKED,
    FAILED,
    INTERRUPTED,
    REJECTED,
    RUNNING,
    WAITING,
    Submission,
)

__all__ = ["ROUTES"]

SHEET_SUFFIXES = (".csv", ".xlsx", ".xlsm")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _see(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def upload_page(request: Request) -> Response:
    user = signed_in(request, submit=True)
    mine = web(request).store.list(submitter=user.upn)
    return render(request, "upload.html", user, submissions=mine)


async def template(request: Request) -> Response:
    """An input template with the tenant's licenses and countries as dropdowns."""
    signed_in(request, submit=True)
    state = web(request)
    path = await run_in_threadpool(tenant_template, state.settings, state.store.folder / "tmp")
    try:
        data = path.read_bytes()
    finally:
        path.unlink(missing_ok=True)
    disposition = 'attachment; filename="m365batch-template.xlsx"'
    return Response(data, media_type=XLSX, headers={"Content-Disposition": disposition})


async def check(request: Request) -> Response:
    """Store the upload under a generated name, then validate and plan it."""
    user = signed_in(request, submit=True)
    form = await checked_form(request, max_part_size=MAX_UPLOAD)
    sheet = form.get("sheet")
    if not isinstance(sheet, UploadFile) or not sheet.filename:
        return _upload_error(request, user, "Choose a sheet (CSV or XLSX) first.")
    name = Path(sheet.filename).name
    suffix = Path(name).suffix.lower()
    if suffix not in SHEET_SUFFIXES:
        return _upload_error(request, user, f"'{name}' is not a CSV or XLSX sheet.")
    data = await sheet.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        return _upload_error(request, user, "The sheet is too large (10 MB at most).", 413)
    state = web(request)
    stored = state.store.save_upload(data, suffix)
    try:
        result = await run_in_threadpool(check_sheet, state.settings, stored)
    except BatchError as exc:
        stored.unlink(missing_ok=True)
        # the message names the sheet as the person knows it, never where it is kept
        text = redact(str(exc)).replace(str(stored), name).replace(stored.name, name)
        return _upload_error(request, user, text, 400)
    sid = state.store.add(name, stored, user.upn, result)
    return _see(f"/submissions/{sid}")


def _upload_error(request: Request, user: Identity, message: str, status: int = 400) -> Response:
    mine = web(request).store.list(submitter=user.upn)
    return render(request, "upload.html", user, status, error=message, submissions=mine)


def _visible(request: Request, user: Identity) -> Submission:
    sub = web(request).store.get(request.path_params["sid"])
    if sub is None:
        raise HTTPException(404, "No such submission.")
    if sub.submitter != user.upn and not user.can_approve:
        raise HTTPException(403, "This is someone else's submission.")
    return sub


def submission_page(request: Request) -> Response:
    user = signed_in(request)
    sub = _visible(request, user)
    state = web(request)
    progress = state.worker.progress.get(sub.id)
    journal = state.worker.run_info(sub.run_id) if sub.status == INTERRUPTED else None
    return render(request, "submission.html", user, sub=sub, progress=progress, journal=journal)


def progress(request: Request) -> Response:
    """The live progress of a submission's run, for the page's script."""
    user = signed_in(request)
    sub = _visible(request, user)
    entry = web(request).worker.progress.get(sub.id) or {"done": 0, "total": 0}
    return JSONResponse({"status": sub.status, **entry})


async def plan_download(request: Request) -> Response:
    """The plan workbook (``m365batch plan``'s), planned against the tenant as it is now."""
    user = signed_in(request)
    sub = _visible(request, user)
    state = web(request)
    output = state.store.folder / "plans" / f"{sub.id}-plan.xlsx"
    path = await run_in_threadpool(plan_workbook, state.settings, Path(sub.stored_path), output)
    name = f"{Path(sub.file_name).stem}-plan.xlsx"
    return FileResponse(path, media_type=XLSX, filename=name)


async def submit(request: Request) -> Response:
    user = signed_in(request, submit=True)
    await checked_form(request)
    sub = _visible(request, user)
    if sub.submitter != user.upn or sub.status != CHECKED:
        raise HTTPException(409, "This submission cannot be submitted now.")
    web(request).store.update(sub.id, status=WAITING)
    return _see(f"/submissions/{sub.id}")


def _decidable(request: Request, user: Identity) -> Submission:
    sub = _visible(request, user)
    if sub.submitter == user.upn:
        raise HTTPException(403, "Nobody approves their own submission.")
    if sub.status != WAITING:
        raise HTTPException(409, "This submission is not waiting for approval.")
    return sub


async def approve(request: Request) -> Response:
    user = signed_in(request, approve=True)
    await checked_form(request)
    sub = _decidable(request, user)
    state = web(request)
    state.store.update(sub.id, status=APPROVED, approver=user.upn)
    state.worker.approve(sub.id, user.upn)
    return _see(f"/submissions/{sub.id}")


async def reject(request: Request) -> Response:
    user = signed_in(request, approve=True)
    form = await checked_form(request)
    sub = _decidable(request, user)
    reason = str(form.get("reason") or "").strip()
    if not reason:
        progress = web(request).worker.progress.get(sub.id)
        return render(
            request,
            "submission.html",
            user,
            400,
            sub=sub,
            progress=progress,
            error="Say why the submission is rejected.",
        )
    web(request).store.update(sub.id, status=REJECTED, approver=user.upn, reason=reason[:500])
    return _see("/approvals")


async def resume(request: Request) -> Response:
    user = signed_in(request, approve=True)
    await checked_form(request)
    sub = _visible(request, user)
    if sub.status not in (INTERRUPTED, FAILED):
        raise HTTPException(409, "This run is neither interrupted nor failed.")
    web(request).worker.resume(sub.id, user.upn)
    return _see(f"/submissions/{sub.id}")


def approvals(request: Request) -> Response:
    user = signed_in(request, approve=True)
    store = web(request).store
    waiting = store.list(status=WAITING)
    stuck = [*store.list(status=INTERRUPTED), *store.list(status=FAILED)]
    stuck += store.list(status=RUNNING)
    return render(request, "approvals.html", user, waiting=waiting, stuck=stuck)


ROUTES = [
    ("/", upload_page, ["GET"]),
    ("/check", check, ["POST"]),
    ("/template", template, ["GET"]),
    ("/submissions/{sid}", submission_page, ["GET"]),
    ("/submissions/{sid}/progress", progress, ["GET"]),
    ("/submissions/{sid}/plan", plan_download, ["GET"]),
    ("/submissions/{sid}/submit", submit, ["POST"]),
    ("/submissions/{sid}/approve", approve, ["POST"]),
    ("/submissions/{sid}/reject", reject, ["POST"]),
    ("/submissions/{sid}/resume", resume, ["POST"]),
    ("/approvals", approvals, ["GET"]),
]
