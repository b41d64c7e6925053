"""The web app: an ASGI application (Starlette) over the same library as the command line.

``create_app(settings)`` builds it for an open tenant. Sessions are signed cookies
(HttpOnly, SameSite=Lax, Secure when served over HTTPS) holding who is signed in and the
CSRF token; the key is kept in the home so that a restart keeps people signed in.
On the simulated tenant, the address ``serve`` prints carries a one-time token: a browser
must come through it once before it can sign in, so other local users cannot.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batch.config import Settings
from batch.errors import AuthError
from batch.web import pages, runpages
from batch.web.base import WebState, build_state, current_identity, render, web
from batch.web.guard import SignInNeeded, checked_form
from batch.web.signin import relay_authorize

__all__ = ["create_app"]

_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; form-action 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """Every answer: a strict content policy, no referrer (the one-time token), no caching."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {name.lower() for name, _ in headers}
                message["headers"] = headers + [h for h in _HEADERS if h[0] not in have]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _session_key(home: Path) -> str:
    path = home / "web" / "session.key"
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text(encoding="utf-8").strip()


def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def start(request: Request) -> Response:
    """The address ``serve`` printed: its token admits this browser, once."""
    state = web(request)
    token = request.query_params.get("token", "")
    if state.admission and hmac.compare_digest(token, state.admission):
        state.admission = None
        request.session["admitted"] = True
        return RedirectResponse("/signin", status_code=303)
    return _refused(request, "This address has been used already. Open the one serve printed.")


def _refused(request: Request, message: str) -> Response:
    return render(request, "message.html", None, 403, title="Sign-in refused", message=message)


def signin(request: Request) -> Response:
    state = web(request)
    if state.needs_admission and not request.session.get("admitted"):
        return _refused(request, "Open the address that 'm365batch serve' printed to sign in.")
    flow = state.signin.start(str(request.url_for("signin_callback")))
    request.session["flow"] = flow
    target = flow["auth_uri"]
    if state.needs_admission:  # the simulated tenant: its picker relayed from this origin
        endpoint, _, query = target.partition("?")
        state.extra["authorize"] = endpoint
        target = f"/simulated-signin?{query}"
    return RedirectResponse(target, status_code=303)


async def simulated_signin(request: Request) -> Response:
    """The simulated tenant's account picker, relayed so the browser meets no unknown CA.

    Only on the simulated tenant, and only to the authorize endpoint msal named.
    """
    state = web(request)
    endpoint = state.extra.get("authorize")
    if not state.needs_admission or not endpoint:
        raise HTTPException(404, "Not here.")
    body = await request.body() if request.method == "POST" else None
    answer = await run_in_threadpool(
        relay_authorize, state.settings, endpoint, request.url.query, body
    )
    if answer.status_code in (301, 302, 303) and "Location" in answer.headers:
        return RedirectResponse(answer.headers["Location"], status_code=303)
    kind = answer.headers.get("Content-Type", "text/plain")
    # the picker is the simulated tenant's page: its own inline style, forms to itself
    policy = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
    headers = {"Content-Security-Policy": policy}
    return Response(answer.content, answer.status_code, headers, media_type=kind)


def signin_callback(request: Request) -> Response:
    state = web(request)
    flow = request.session.pop("flow", None)
    if not flow:
        return RedirectResponse("/signin", status_code=303)
    try:
        user = state.signin.finish(flow, dict(request.query_params))
    except AuthError as exc:
        return _refused(request, str(exc))
    if not user.can_submit:
        return _refused(request, f"{user.upn} holds neither Licensing.Submit nor Approve.")
    request.session["user"] = user.as_dict()
    request.session["csrf"] = secrets.token_urlsafe(32)
    return RedirectResponse("/approvals" if user.can_approve else "/", status_code=303)


async def signout(request: Request) -> Response:
    await checked_form(request)
    admitted = request.session.get("admitted")
    request.session.clear()
    if admitted:
        request.session["admitted"] = True
    return render(request, "message.html", None, title="Signed out", message="You are signed out.")


async def _sign_in_needed(request: Request, exc: Exception) -> Response:
    return RedirectResponse("/signin", status_code=303)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return render(
        request,
        "message.html",
        current_identity(request),
        exc.status_code,
        title="Not allowed" if exc.status_code == 403 else "Cannot do that",
        message=exc.detail,
    )


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    state: WebState = app.state.web
    state.worker.stop()
    state.store.close()


def create_app(settings: Settings, *, admission: str | None = None, https: bool = False) -> Any:
    """The web app for the open tenant ``settings``; ``admission``: the one-time token."""
    state = build_state(settings, admission)
    routes = [
        Route("/healthz", healthz),
        Route("/start", start),
        Route("/signin", signin),
        Route("/signin/callback", signin_callback, name="signin_callback"),
        Route("/simulated-signin", simulated_signin, methods=["GET", "POST"]),
        Route("/signout", signout, methods=["POST"]),
        *(Route(p, f, methods=m) for p, f, m in [*pages.ROUTES, *runpages.ROUTES]),
        Mount("/static", StaticFiles(packages=[("batch.web", "static")]), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(
            SessionMiddleware,
            secret_key=_session_key(settings.home),
            session_cookie="m365batch_session",
            max_age=8 * 3600,
            same_site="lax",
            https_only=https,
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={SignInNeeded: _sign_in_needed, HTTPException: _http_error},
        lifespan=_lifespan,
    )
    app.state.web = state
    return app
