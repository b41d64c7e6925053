"""The HTTPS sessions every request goes through: Graph's, msal's and the web sign-in's.

- :func:`new_session`: pooled, no automatic retries (retries are the caller's: they must
  respect ``Retry-After`` and never repeat a write blindly), trusting the configured CA
  whatever the environment says (:class:`PinnedSession`), with a default timeout for msal,
  which calls it with none.
- A connection whose TLS wrap fails because the server reset it first (a listening socket
  closed with our connection in its backlog) closes the socket ``ssl`` half made
  (:mod:`batch.tls`), instead of leaving it open until garbage collection.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import requests
import requests.adapters
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool

from batch.tls import close_half_made

if TYPE_CHECKING:
    from requests.sessions import _Settings  # the stubs' name for what the merge returns

__all__ = ["ClosingHTTPSConnection", "PinnedSession", "new_session"]


class PinnedSession(requests.Session):
    """A ``requests.Session`` whose configured ``verify`` wins over the environment.

    requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` replace a session's ``verify``
    (psf/requests#3829), so a machine-wide bundle would make the simulated tenant's CA, or a
    CA configured for a tenant profile, silently ignored. Proxies still come from the
    environment.
    """

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> _Settings:
        merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify in (None, True) and self.verify not in (None, True):
            merged["verify"] = self.verify
        return merged


class ClosingHTTPSConnection(HTTPSConnection):
    """An HTTPS connection that closes what a failed TLS wrap left open."""

    def connect(self) -> None:
        try:
            super().connect()
        except Exception as exc:
            close_half_made(exc)
            raise


class _ClosingPool(HTTPSConnectionPool):
    ConnectionCls = ClosingHTTPSConnection


class _Adapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            **self.poolmanager.pool_classes_by_scheme,
            "https": _ClosingPool,
        }


def new_session(
    verify: str | bool | None, *, pool_size: int = 10, timeout: Any = None
) -> requests.Session:
    """A pooled session with no automatic retries, trusting ``verify`` whatever the environment."""
    session = PinnedSession()
    adapter = _Adapter(pool_connections=4, pool_maxsize=max(pool_size, 4), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = verify if verify not in (None, "") else True
    if timeout is not None:
        # msal calls the session without a timeout; give it one (requests has no default).
        session.request = functools.partial(session.request, timeout=timeout)  # type: ignore[method-assign]
    return session
