"""Simulated tenant, wire shapes: Graph replies and Graph-shaped error bodies.

Every error the simulated Graph sends has the documented shape
``{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}``;
throttling errors nest ``innerError`` the way the throttling docs show (``code``, ``date``,
``message``, ``request-id``, ``status``).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

NOT_ALLOWED = "Specified HTTP method is not allowed for the request target."
INSUFFICIENT = "Insufficient privileges to complete the operation."


class GraphFault(Exception):
    """Raised by a handler to answer with a Graph error."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass
class Reply:
    """One Graph answer: status, headers and a JSON (or text) body."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def bad_request(message: str, code: str = "Request_BadRequest") -> GraphFault:
    """A 400 with Graph's usual code."""
    return GraphFault(400, code, message)


def not_found(key: str) -> GraphFault:
    """The 404 Graph sends for an unknown directory object."""
    return GraphFault(
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-property objects "
        "are not present.",
    )


def graph_date() -> str:
    """Graph's innerError date format (UTC, seconds)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def error_body(
    code: str, message: str, request_id: str, client_request_id: str, *, status: int | None = None
) -> dict[str, Any]:
    """A Graph error body; 429s use the throttling docs' innerError shape."""
    if status == 429:
        inner: dict[str, Any] = {
            "code": "429",
            "date": graph_date(),
            "message": "Please retry after",
            "request-id": request_id,
            "status": "429",
        }
    else:
        inner = {
            "date": graph_date(),
            "request-id": request_id,
            "client-request-id": client_request_id,
        }
    return {"error": {"code": code, "message": message, "innerError": inner}}


def fault_reply(fault: GraphFault, request_id: str, client_request_id: str) -> Reply:
    """The reply for a raised :class:`GraphFault`."""
    return Reply(
        fault.status,
        error_body(fault.code, fault.message, request_id, client_request_id, status=fault.status),
        dict(fault.headers),
    )


def dump_json(body: Any) -> bytes:
    """Serialise a reply body."""
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
