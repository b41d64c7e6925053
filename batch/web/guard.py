"""The web app's guards: who is signed in, what their role allows, and CSRF on every form.

- No session: every page but ``/healthz`` and the sign-in steps redirects to sign-in.
- A role that does not allow the action: 403.
- Every form carries the session's CSRF token; a POST without it (or with another) is 403.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

from batch.web.signin import Identity

__all__ = ["MAX_UPLOAD", "SignInNeeded", "checked_form", "csrf_token", "signed_in"]

#: the largest sheet accepted, in bytes
MAX_UPLOAD = 10 * 1024 * 1024


class SignInNeeded(Exception):
    """Raised by a page that needs a signed-in person; answered with a redirect."""


def signed_in(request: Request, *, submit: bool = False, approve: bool = False) -> Identity:
    """The person signed in, allowed to submit or approve when asked; else redirect or 403."""
    data = request.session.get("user")
    if not data:
        raise SignInNeeded()
    user = Identity.from_dict(data)
    if (submit and not user.can_submit) or (approve and not user.can_approve):
        raise HTTPException(403, "Your role does not allow this.")
    return user


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use)."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


async def checked_form(request: Request, **limits: Any) -> FormData:
    """The POSTed form, refused (403) unless it carries the session's CSRF token."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_UPLOAD + 64 * 1024:
        raise HTTPException(413, "The sheet is too large (10 MB at most).")
    form = await request.form(**limits)
    sent = form.get("csrf")
    expected = request.session.get("csrf")
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
        raise HTTPException(403, "The form has expired or did not come from this site.")
    return form
