"""A client's lifetime: signing in ahead when it opens, and closing with no request left.

At 200 ms a round trip, msal's discovery and token requests cost a small command about a
fifth of its time; they need nothing the command computes, so :class:`SignInAhead` starts
them on a thread as soon as the client exists. The first request that needs a token waits
for that thread and raises what it met (a wrong secret is reported once, by the request,
as it would have been without it). Only app credentials sign in ahead: an interactive
sign-in prints a prompt, which must come in its turn.

Some reads run in the background (group names, the read-back of written rows, the next
page of a listing) and may still be under way when the command ends. :class:`InFlight`
lets closing wait for the requests under way and refuses new ones: a request started
after ``requests.Session.close()`` would open a connection in a fresh pool that nothing
ever closes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from batch.errors import GraphError

__all__ = ["ClientClosed", "InFlight", "SignInAhead"]

#: how long closing waits for the requests under way (one connect and read at most)
CLOSE_WAIT = 30.0


class SignInAhead:
    """Fetches ``tokens.token()`` on a thread; :meth:`wait` joins it and raises its error once."""

    def __init__(self, tokens: Any) -> None:
        self._error: Exception | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._fetch, args=(tokens,), name="sign-in", daemon=True
        )
        self._thread.start()

    def wait(self) -> None:
        """Wait for the token; raise what the sign-in met, to the first caller only."""
        self._thread.join()
        with self._lock:
            error, self._error = self._error, None
        if error is not None:
            raise error

    def _fetch(self, tokens: Any) -> None:
        try:
            tokens.token()
        except Exception as exc:  # the request that needs the token raises it
            self._error = exc


class ClientClosed(GraphError):
    """Raised for a request asked of a client that was closed (it is never sent)."""


class InFlight:
    """The requests under way on a client; closing waits for them and refuses new ones."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._count = 0
        self.closed = False

    @contextmanager
    def request(self, method: str, url: str) -> Iterator[None]:
        """Count one request for as long as it runs; raise :class:`ClientClosed` once closed."""
        with self._cond:
            if self.closed:
                raise ClientClosed("The Graph client was closed.", method=method, url=url)
            self._count += 1
        try:
            yield
        finally:
            with self._cond:
                self._count -= 1
                self._cond.notify_all()

    def close(self, wait: float = CLOSE_WAIT) -> bool:
        """Refuse new requests and wait up to ``wait`` s for those under way to end."""
        with self._cond:
            self.closed = True
            return self._cond.wait_for(lambda: self._count == 0, timeout=wait)
