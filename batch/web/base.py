"""What every page of the web app shares: the app's state and rendering a template."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from batch.config import Settings
from batch.web.guard import csrf_token
from batch.web.signin import Identity, SignIn
from batch.web.store import SubmissionStore
from batch.web.work import Worker

__all__ = ["STATUS_CLASS", "WebState", "build_state", "current_identity", "render", "web"]

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

#: a row status -> the CSS class that colours it (the status is always written out too)
STATUS_CLASS = {
    "Applied": "ok",
    "NoChange": "ok",
    "Planned": "plan",
    "Ready": "plan",
    "Invalid": "bad",
    "Failed": "bad",
    "Deferred": "warn",
    "Skipped": "warn",
}

#: rows a page lists at most; the rest are in the workbook
ROW_LIMIT = 300
_AS_ASKED = ("Planned", "NoChange", "Applied")


def shown(rows: list[dict[str, Any]], limit: int = ROW_LIMIT) -> tuple[list[dict[str, Any]], int]:
    """The rows a page lists (those needing attention first), and how many it leaves out."""
    if len(rows) <= limit:
        return rows, 0
    attention = [r for r in rows if r["status"] not in _AS_ASKED][:limit]
    others = [r for r in rows if r["status"] in _AS_ASKED][: limit - len(attention)]
    picked = sorted(attention + others, key=lambda r: int(r["row"]))
    return picked, len(rows) - len(picked)


def when(stamp: str | None) -> str:
    """An ISO time as people read it: 2026-11-29 16:46 UTC."""
    if not stamp:
        return ""
    moment = dt.datetime.fromisoformat(stamp)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


TEMPLATES.env.globals["shown"] = shown
TEMPLATES.env.filters["when"] = when


@dataclass
class WebState:
    """The app's settings, durable state, background worker and sign-in."""

    settings: Settings
    store: SubmissionStore
    worker: Worker
    signin: SignIn
    tenant_label: str
    #: the token of the URL ``serve`` printed (simulated tenant); None once used or not needed
    admission: str | None = None
    needs_admission: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def build_state(settings: Settings, admission: str | None) -> WebState:
    """The app's state for an open tenant: the home's submissions, a worker, sign-in."""
    store = SubmissionStore(settings.home)
    worker = Worker(settings, store)
    worker.recover()
    return WebState(
        settings=settings,
        store=store,
        worker=worker,
        signin=SignIn(settings),
        tenant_label=settings.describe(),
        admission=admission,
        needs_admission=admission is not None,
    )


def current_identity(request: Request) -> Identity | None:
    """Who is signed in, if anyone (for pages anyone may see, such as errors)."""
    data = request.session.get("user")
    return Identity.from_dict(data) if data else None


def web(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def render(
    request: Request, template: str, user: Identity | None, status: int = 200, **context: Any
) -> HTMLResponse:
    """A page: the template with the person, their CSRF token and the tenant."""
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "user": user,
            "csrf": csrf_token(request),
            "tenant": web(request).tenant_label,
            "status_class": STATUS_CLASS,
            **context,
        },
        status_code=status,
    )
