"""Simulated tenant, Graph operations as values: who calls (:class:`Caller`), what is called
(:class:`Call`), and how a URL becomes a call.

The raw path is split on ``/`` first and each segment is percent-decoded exactly once, so
``%23EXT%23`` is a ``#`` and ``%2523`` stays ``%23``. A key may also be given as
``users('...')`` (quotes doubled), which is the documented way to address a UPN that starts
with ``$``; a raw ``/users/$x@y`` is refused with 400 as the docs describe (``%24`` is
accepted, a choice: the docs are silent). Query strings are form-decoded, so a raw ``+`` is
a space: clients must send ``%2B``, as with the real service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from batch.simulator.responses import bad_request

_KEY_SYNTAX = re.compile(
    r"^(users|groups|subscribedSkus)\((?:id=)?'((?:[^']|'')*)'\)$", re.IGNORECASE
)


@dataclass(frozen=True)
class Caller:
    """The app behind a verified access token."""

    client_id: str
    roles: frozenset[str]
    issued_at: float


@dataclass
class Call:
    """One Graph operation: a standalone request or one ``$batch`` item."""

    method: str
    segments: list[str]
    params: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any
    base_url: str  # https://host:port/v1.0
    roles: frozenset[str] = frozenset()
    path: str = ""  # canonical relative path, e.g. /users
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def eventual(self) -> bool:
        return self.headers.get("consistencylevel", "").lower() == "eventual"


def split_url(url: str) -> tuple[list[str], dict[str, str]]:
    """Segments (decoded once) and query options of a relative Graph URL."""
    path, _, query = url.partition("?")
    segments: list[str] = []
    for index, raw in enumerate(s for s in path.split("/") if s):
        match = _KEY_SYNTAX.match(unquote(raw)) if "(" in raw else None
        if match:
            segments += [match.group(1), match.group(2).replace("''", "'")]
            continue
        if raw.startswith("$") and index > 0 and raw not in ("$ref", "$count", "$batch"):
            raise bad_request(
                f"Bad request: the segment '{raw}' is not valid here. A key starting with '$' "
                f"must be addressed with the key syntax, e.g. /users('{raw}')."
            )
        segments.append(unquote(raw))
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        name = key.lower() if key.startswith("$") else key
        if name in params:
            raise bad_request(
                f"Query option '{key}' was specified more than once, but it "
                "must be specified at most once."
            )
        params[name] = value
    return segments, params
