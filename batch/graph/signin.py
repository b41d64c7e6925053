"""Signing in ahead: a command's first token is fetched while it loads and reads its input.

At 200 ms a round trip, msal's discovery and token requests cost a small command about a
fifth of its time; they need nothing the command computes, so :class:`SignInAhead` starts
them on a thread as soon as the client exists. The first request that needs a token waits
for that thread and raises what it met (a wrong secret is reported once, by the request,
as it would have been without it). Only app credentials sign in ahead: an interactive
sign-in prints a prompt, which must come in its turn.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["SignInAhead"]


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
