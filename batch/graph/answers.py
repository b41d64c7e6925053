"""Graph's answers, read once: error fields, the exception for an error, Retry-After, backoff.

Both the client's single requests and the engine's ``$batch`` items read answers the same
way, so the helpers live here rather than in either:

- :func:`graph_error_fields` pulls Graph's error code, message and request-id out of an
  error body, whatever its nesting; :func:`status_error` turns an error answer into
  :class:`~batch.errors.PermissionDenied` (401/403) or :class:`~batch.errors.GraphStatusError`,
  each carrying method, URL, status, code and request-id; :func:`request_error` turns a
  ``requests`` transport failure into :class:`~batch.errors.GraphRequestError`, marked
  ``never_sent`` when the server provably never saw it;
- :func:`parse_retry_after` reads ``Retry-After`` (seconds, fractional too, or an HTTP date);
  :func:`backoff_delay` is the exponential backoff with jitter when it is absent;
- :class:`BatchReply` is the raw answer to one ``POST /$batch``, its items indexed by id
  (:func:`index_responses`).
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from batch.errors import GraphRequestError, GraphStatusError, PermissionDenied

log = logging.getLogger(__name__)

_PERMISSION_HINT = (
    "The app lacks a permission for this call (LicenseAssignment.ReadWrite.All and "
    "User.Read.All are the least it needs), or admin consent was not granted."
)
_TOKEN_HINT = (
    "The access token expired or was rejected, even after a renewal: check the app's "
    "credentials, the tenant and this computer's clock."
)
#: Graph's words when a call is refused for a missing permission (not for the token)
_PERMISSION_WORDS = ("Authorization_RequestDenied", "privileges", "permission", "consent")


@dataclass
class BatchReply:
    """The raw answer to one ``POST /$batch`` (or the reason there was none)."""

    status: int | None  #: outer HTTP status; ``None`` when no answer came back
    headers: Mapping[str, str]
    responses: dict[str, dict[str, Any]] | None  #: item id -> {status, headers, body}
    error: GraphRequestError | None = None
    #: False only when the request provably never reached the server (connection refused)
    delivered: bool = True
    request_id: str | None = None
    elapsed: float = 0.0
    body: Any = None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: seconds (fractional too) or an HTTP date."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter for retry number ``attempt`` (1 = first retry)."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return random.uniform(ceiling / 2, ceiling)


def graph_error_fields(body: Any) -> tuple[str | None, str | None, str | None]:
    """(code, message, request-id) from a Graph error body, whatever its exact nesting."""
    if not isinstance(body, dict):
        return None, None, None
    error = body.get("error")
    if not isinstance(error, dict):
        return None, None, None
    inner = error.get("innerError") or error.get("innererror") or {}
    request_id = inner.get("request-id") if isinstance(inner, dict) else None
    code = error.get("code") or None
    message = error.get("message") or None
    return (str(code) if code else None, str(message) if message else None, request_id)


def status_error(
    method: str,
    url: str,
    status: int,
    body: Any,
    headers: Mapping[str, str] | None = None,
    *,
    hint: str | None = None,
) -> GraphStatusError:
    """The exception for an error answer: PermissionDenied for 401/403, else GraphStatusError."""
    code, message, inner_id = graph_error_fields(body)
    request_id = (headers or {}).get("request-id") or inner_id
    if message is None:
        message = (
            body[:200]
            if isinstance(body, str) and body.strip()
            else f"HTTP {status} with no error body"
        )
    cls = PermissionDenied if status in (401, 403) else GraphStatusError
    if cls is PermissionDenied and hint is None:
        says_permission = any(w.lower() in f"{code} {message}".lower() for w in _PERMISSION_WORDS)
        hint = _TOKEN_HINT if status == 401 and not says_permission else _PERMISSION_HINT
    return cls(
        message,
        status=status,
        code=code,
        request_id=request_id,
        method=method,
        url=display_url(url),
        response=body,
        hint=hint,
    )


def request_error(method: str, url: str, exc: requests.RequestException) -> GraphRequestError:
    """The exception for a request that got no answer, marked ``never_sent`` when safe to resend."""
    if isinstance(exc, requests.exceptions.SSLError):
        what = "the TLS handshake failed (is REQUESTS_CA_BUNDLE right?)"
    elif isinstance(exc, requests.exceptions.ConnectTimeout):
        what = "connecting timed out"
    elif isinstance(exc, requests.exceptions.ReadTimeout):
        what = "no answer before the read timeout"
    elif isinstance(exc, requests.exceptions.ConnectionError):
        what = "the connection failed or was reset"
    else:
        what = f"the request failed ({type(exc).__name__})"
    error = GraphRequestError(f"{method} {url}: {what}", method=method, url=display_url(url))
    # A request that could not even connect was never seen by the server: safe to send again.
    error.never_sent = _never_sent(exc)  # type: ignore[attr-defined]
    return error


def _never_sent(exc: requests.RequestException) -> bool:
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError)):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = repr(exc.args[0]) if exc.args else ""
        return "NewConnectionError" in text or "Connection refused" in text
    return False


def index_responses(body: Any) -> dict[str, dict[str, Any]] | None:
    """A ``$batch`` answer body's items by id (lowercased); None when it holds no list."""
    if not isinstance(body, dict) or not isinstance(body.get("responses"), list):
        return None
    indexed: dict[str, dict[str, Any]] = {}
    for item in body["responses"]:
        if isinstance(item, dict) and item.get("id") is not None:
            # Ids are not case-sensitive in Graph; ours are digits, lowercase anyway.
            key = str(item["id"]).lower()
            if key in indexed:
                log.warning("$batch answer repeats item id %s; keeping the first", key)
                continue
            indexed[key] = item
    return indexed


def item_status(answer: Mapping[str, Any]) -> int:
    """The status of one ``$batch`` item answer; 0 when it has none that reads as a number."""
    try:
        return int(answer.get("status", 0))
    except (TypeError, ValueError):
        return 0


def lower_keys(headers: Any) -> dict[str, str]:
    """Headers (of a ``$batch`` item, a plain dict) with lowercased names; {} when not a mapping."""
    if not isinstance(headers, Mapping):
        return {}
    return {str(k).lower(): str(v) for k, v in headers.items()}


def header_float(value: Any) -> float:
    """A numeric header (``x-ms-resource-unit``, a percentage) as a float; 0.0 when unreadable."""
    try:
        return float(value) if value else 0.0
    except (TypeError, ValueError):
        return 0.0


def display_url(url: str) -> str:
    """The URL as shown in messages and logs."""
    # The full URL is useful in messages; it carries no credential (tokens go in headers).
    return url
