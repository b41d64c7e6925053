"""TLS sockets a reset peer leaves half made, closed rather than left to the collector.

``ssl.SSLSocket._create`` takes a connected socket's descriptor over before it checks the
connection. When the peer has already reset it (a client that went away before the
simulated tenant accepted it; a server that closed its listening socket with our connection
still in its backlog), its ``recv(1)`` raises ECONNRESET and the new ``SSLSocket`` is left
open, held by nobody: the descriptor stays open until garbage collection, which reports it
as a ``ResourceWarning``. Both ends of our HTTPS wrap sockets through
:func:`close_half_made` on failure.
"""

from __future__ import annotations

import ssl

__all__ = ["close_half_made"]


def close_half_made(exc: BaseException) -> None:
    """Close the ``SSLSocket`` that the failed wrap raising ``exc`` made and dropped.

    It is the ``self`` of ``SSLSocket._create``, found in the exception's traceback; a
    wrap that failed in the handshake closed its socket already (closing twice is a no-op).
    """
    tb = exc.__traceback__
    while tb is not None:
        made = tb.tb_frame.f_locals.get("self")
        if isinstance(made, ssl.SSLSocket):
            made.close()
        tb = tb.tb_next
