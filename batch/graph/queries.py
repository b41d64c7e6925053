"""OData query text: string literals, percent-encoded query strings, user paths, id filters.

A UPN may hold ``'``, ``#``, ``&``, ``+`` or ``%``: a literal doubles its single quotes and a
query value is percent-encoded whole (``#`` is ``%23``, ``+`` is ``%2B``, a space ``%20``),
so what Graph filters on is exactly what was asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# Characters left as they are in query values; everything else (# & + % = space ...) is encoded.
_QUERY_SAFE = "'(),:/@$*!"


def odata_string(value: str) -> str:
    """``value`` as an OData string literal: single quotes doubled, then quoted."""
    return "'" + value.replace("'", "''") + "'"


def encode_query(params: Mapping[str, Any]) -> str:
    """A query string with values percent-encoded (``#`` -> %23, ``+`` -> %2B, space -> %20)."""
    return "&".join(
        f"{quote(str(key), safe='$')}={quote(str(value), safe=_QUERY_SAFE)}"
        for key, value in params.items()
        if value is not None
    )


def user_path(user: str) -> str:
    """``/users/{id or UPN}`` with the UPN percent-encoded as one path segment."""
    return "/users/" + quote(user, safe="@")


def is_guid(value: str) -> bool:
    """Whether ``value`` is a GUID (an object id)."""
    return bool(_GUID.match(value.strip()))


def users_filter_path(prop: str, values: list[str], fields: list[str]) -> str:
    """``/users?$filter={prop} in (...)&$select=...`` for ``values`` (at most 15 of them)."""
    literals = ",".join(odata_string(v) for v in values)
    return "/users?" + encode_query(
        {"$filter": f"{prop} in ({literals})", "$select": ",".join(fields)}
    )


def chunks(values: list[str], size: int) -> Iterator[list[str]]:
    """``values`` in consecutive lists of at most ``size``."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
