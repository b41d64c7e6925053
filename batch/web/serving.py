"""Serving the web app: the listening socket and uvicorn, for ``m365batch serve``."""

from __future__ import annotations

import socket
from typing import Any

from batch.errors import ConfigError

__all__ = ["listen", "run"]


def listen(host: str, port: int) -> tuple[socket.socket, str]:
    """A socket listening on ``host:port`` (0: any free port) and its http:// address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
            hint="Pick another --port (0: any free one), or stop what uses it.",
        ) from exc
    sock.listen(128)  # before the address is shown: a browser may connect at once
    shown = f"[{host}]" if ":" in host else host
    return sock, f"http://{shown}:{sock.getsockname()[1]}/"


def run(app: Any, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until interrupted (no access log: addresses carry tokens)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
