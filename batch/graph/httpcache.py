"""msal's HTTP cache, kept between commands: a command does not ask for the tenant's OpenID
configuration again when the last one did (msal keeps it a day).

Before its first token msal reads the authority's ``openid-configuration``: a round trip
of its own, 200 ms or more, on every command. msal caches such answers in a dict-like
``http_cache`` and, for command-line tools, documents keeping it in a file between runs
(``ConfidentialClientApplication`` docs, ``http_cache``). It holds no tokens and no
personal data, only discovery documents and, for a few seconds, the throttling answers
msal must honour. The file lives in ``M365BATCH_HOME`` (owner-only), is written whole or
not at all, and a file that cannot be read (another msal version, damaged) is ignored.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any

from batch.files import atomic_write

log = logging.getLogger(__name__)

CACHE_FILE = "msal-http-cache.pickle"


def load_http_cache(home: Path) -> dict[str, Any]:
    """The cache kept in ``home``, or an empty one (missing, unreadable, not ours)."""
    path = home / CACHE_FILE
    try:
        info = path.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            return {}  # only a file this user wrote and nobody else can change
        with path.open("rb") as handle:
            cache = pickle.load(handle)
    except FileNotFoundError:
        return {}
    except Exception as exc:  # msal's recipe: start afresh on any error
        log.debug("msal's HTTP cache %s is ignored: %s", path, exc)
        return {}
    return cache if isinstance(cache, dict) else {}


def save_http_cache(home: Path, cache: dict[str, Any]) -> None:
    """Keep ``cache`` in ``home`` (when that folder exists); a failure only costs a round trip."""
    if not home.is_dir():
        return
    try:
        atomic_write(home / CACHE_FILE, pickle.dumps(cache), overwrite=True)
    except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:
        log.debug("msal's HTTP cache was not kept: %s", exc)
