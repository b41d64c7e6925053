"""The HTTPS sessions: what a failed TLS wrap leaves behind is closed."""

from __future__ import annotations

import gc
import socket

import pytest

from batch.graph.transport import ClosingHTTPSConnection, new_session


def test_a_server_gone_before_the_handshake_leaves_no_socket_open() -> None:
    """A listening socket closed with our connection in its backlog resets it; ``ssl``'s
    wrap then fails after taking the socket over. pytest fails on the unclosed socket."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    connected = socket.create_connection(("127.0.0.1", port), timeout=5)
    listener.close()  # never accepted: the connection is reset
    connection = ClosingHTTPSConnection("127.0.0.1", port, timeout=5)
    connection._new_conn = lambda: connected  # type: ignore[method-assign]
    with pytest.raises(OSError):
        connection.connect()
    gc.collect()


def test_sessions_use_the_closing_connections() -> None:
    session = new_session(True)
    try:
        manager = session.get_adapter("https://graph.example").poolmanager
        pool = manager.connection_from_url("https://graph.example/v1.0/users")
        assert pool.ConnectionCls is ClosingHTTPSConnection
    finally:
        session.close()
