"""Simulated tenant, HTTP plumbing: a threaded HTTPS server with keep-alive, and its handle.

:func:`start_simulator` opens (or creates) the state in ``state_dir``, starts the server
on 127.0.0.1 in a background thread and returns a :class:`RunningSimulator` with the
settings a client needs. Every answer, including a malformed request line, an unknown
method or an oversized body, is Graph-shaped JSON with ``request-id`` and
``client-request-id`` headers; nothing answers with a traceback. The TLS handshake runs in
the handler thread, so a client that does not trust the CA cannot stall the server.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import re
import secrets
import socket
import ssl
import struct
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

from batch.simulator.auth import Authority, EntraError, certificate_record, dumps
from batch.simulator.batching import handle_batch
from batch.simulator.calls import Call, split_url
from batch.simulator.options import SimulatorOptions
from batch.simulator.responses import GraphFault, Reply, dump_json, error_body, fault_reply
from batch.simulator.service import Counters, Service, new_request_id
from batch.simulator.state import AppCredentials, TenantStore, open_state
from batch.tls import close_half_made

log = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024
_DISCOVERY = re.compile(r"^/([^/]+)/v2\.0/\.well-known/openid-configuration$")
_TOKEN = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
_DEVICE = re.compile(r"^/([^/]+)/oauth2/v2\.0/devicecode$")
_AUTHORIZE = re.compile(r"^/([^/]+)/oauth2/v2\.0/authorize$")
_JSON_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;"
    "IEEE754Compatible=false;charset=utf-8"
)


class _DropConnection(Exception):
    """Raised inside a handler to close the socket without answering."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sim: _Core, context: ssl.SSLContext) -> None:
        super().__init__(address, _Handler)
        self.sim = sim
        self.context = context
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        try:
            wrapped = self.context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        except OSError as exc:  # the peer reset before the handshake
            close_half_made(exc)
            raise
        with self.sockets_lock:
            self.open_sockets.add(wrapped)
        return wrapped, address

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("simulator connection error from %s", client_address, exc_info=True)

    def close_all(self) -> None:
        with self.sockets_lock:
            sockets = list(self.open_sockets)
            self.open_sockets.clear()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "m365batch-simulator"
    sys_version = ""
    timeout = 60  # idle keep-alive connections end on their own
    server: _Server

    def setup(self) -> None:
        super().setup()
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            self.close_connection = True
            raise _DropConnection() from None

    def handle(self) -> None:
        try:
            super().handle()
        except (_DropConnection, ConnectionError, ssl.SSLError, TimeoutError, OSError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("simulator: " + format, *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Graph-shaped errors for what the stdlib rejects (bad request line, methods)."""
        status = 405 if code == 501 else code
        graph_code = "Request_BadRequest" if status == 405 else "BadRequest"
        text = (
            "Specified HTTP method is not allowed for the request target."
            if status == 405
            else (message or "Bad request.")
        )
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # a garbled request line: answer HTTP/1.1
            self.request_version = "HTTP/1.1"
        self._send(
            Reply(status, error_body(graph_code, text, new_request_id(), new_request_id())),
            new_request_id(),
            new_request_id(),
        )

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

    # -- the request cycle ---------------------------------------------------------------

    def _dispatch(self) -> None:
        core = self.server.sim
        core.counters.add("requests")
        request_id = new_request_id()
        client_request_id = self.headers.get("client-request-id") or new_request_id()
        try:
            if core.options.latency_ms:
                time.sleep(core.options.latency_ms / 1000)
            body = self._read_body()
            if core.service.faults.reset_before():
                core.counters.add("reset_before")
                raise _DropConnection()
            reply = self._route(core, body, request_id, client_request_id)
            if self.path.startswith("/v1.0") and core.service.faults.reset_after():
                core.counters.add("reset_after")
                raise _DropConnection()
        except _DropConnection:
            self._reset()
            return
        except GraphFault as fault:
            reply = fault_reply(fault, request_id, client_request_id)
        except Exception:  # a bug must still answer in Graph's shape, never hang
            log.exception("simulator: internal error on %s %s", self.command, self.path)
            reply = Reply(
                500,
                error_body(
                    "generalException",
                    "An unexpected error occurred.",
                    request_id,
                    client_request_id,
                ),
            )
        self._send(reply, request_id, client_request_id)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise GraphFault(411, "BadRequest", "Length Required: send a Content-Length.")
        length_text = self.headers.get("Content-Length", "0") or "0"
        if not length_text.isdigit():
            self.close_connection = True
            raise GraphFault(400, "BadRequest", "Invalid Content-Length header.")
        length = int(length_text)
        if length > MAX_BODY:
            self.close_connection = True
            raise GraphFault(413, "RequestEntityTooLarge", "The request body is too large.")
        return self.rfile.read(length) if length else b""

    def _route(self, core: _Core, body: bytes, request_id: str, client_request_id: str) -> Reply:
        path, _, query = self.path.partition("?")
        host = core.authority_host
        discovery = _DISCOVERY.match(path)
        if discovery and self.command == "GET":
            return self._entra(lambda: core.authority.discovery(discovery.group(1), host))
        token = _TOKEN.match(path)
        if token and self.command == "POST":
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            core.counters.add("token_requests")
            return self._entra(lambda: core.authority.token(token.group(1), form, host))
        device = _DEVICE.match(path)
        if device and self.command == "POST":
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            return self._entra(lambda: core.authority.device_code(device.group(1), form, host))
        if _AUTHORIZE.match(path) and self.command in ("GET", "POST"):
            return core.authority.authorize(self.command, query, body)
        if path == "/devicelogin":
            return _device_login(core, self.command, query, body)
        if path == "/v1.0" or path.startswith("/v1.0/"):
            return self._graph(
                core, path[len("/v1.0") :], query, body, request_id, client_request_id
            )
        raise GraphFault(404, "BadRequest", f"Invalid version or resource: '{path}'.")

    def _entra(self, action: Any) -> Reply:
        try:
            return Reply(200, action(), {"Cache-Control": "no-store, no-cache"})
        except EntraError as error:
            return Reply(error.status, error.body())

    def _graph(
        self,
        core: _Core,
        relative: str,
        query: str,
        body: bytes,
        request_id: str,
        client_request_id: str,
    ) -> Reply:
        caller = core.authority.verify(self.headers.get("Authorization"))
        method = self.command.upper()
        if relative.strip("/") == "$batch":
            if method != "POST":
                raise GraphFault(
                    405,
                    "Request_BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                )
            fault = core.service.faults.batch_fault()
            if fault is not None:
                core.counters.add(f"batch_fault_{fault}")
                return core.service.outer_fault(fault, request_id, client_request_id)
            return handle_batch(
                core.service, body, caller, core.graph_url, request_id, client_request_id
            )
        single = core.service.faults.single_fault()
        if single is not None:
            core.counters.add(f"single_fault_{single}")
            return core.service.outer_fault(single, request_id, client_request_id)
        segments, params = split_url(relative + (f"?{query}" if query else ""))
        parsed: Any = None
        if body.strip():
            try:
                parsed = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise GraphFault(
                    400,
                    "BadRequest",
                    "Unable to read JSON request payload. "
                    "Please ensure Content-Type header is set and payload is of "
                    "valid JSON format.",
                ) from exc
        headers = {k.lower(): v for k, v in self.headers.items()}
        call = Call(
            method=method,
            segments=segments,
            params=params,
            headers=headers,
            body=parsed,
            base_url=core.graph_url,
            path=relative,
        )
        return core.service.operation(call, caller, request_id, client_request_id)

    def _send(self, reply: Reply, request_id: str, client_request_id: str) -> None:
        payload = (
            b""
            if reply.body is None
            else (
                dumps(reply.body)
                if reply.status >= 400 and not isinstance(reply.body, str)
                else dump_json(reply.body)
            )
        )
        try:
            self.send_response(reply.status)
            headers = {
                "request-id": request_id,
                "client-request-id": client_request_id,
                **reply.headers,
            }
            if payload and "Content-Type" not in headers:
                headers["Content-Type"] = _JSON_TYPE
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if payload and self.command != "HEAD":
                self.wfile.write(payload)
            self.wfile.flush()
        except (ConnectionError, ssl.SSLError, OSError):
            self.close_connection = True

    def _reset(self) -> None:
        """Close the connection abruptly (RST), with no answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class _Core:
    """What handler threads share: store, identity, Graph service, addresses."""

    def __init__(
        self, store: TenantStore, authority: Authority, service: Service, options: SimulatorOptions
    ) -> None:
        self.store = store
        self.authority = authority
        self.service = service
        self.options = options
        self.counters = service.counters
        self.authority_host = ""
        self.graph_url = ""


class RunningSimulator:
    """A simulated tenant serving HTTPS on 127.0.0.1; stop it (or use ``with``) when done."""

    def __init__(
        self,
        server: _Server,
        thread: threading.Thread,
        core: _Core,
        state_dir: Path,
        ca_path: Path,
        app: AppCredentials,
    ) -> None:
        self._server = server
        self._thread = thread
        self._core = core
        self.state_dir = state_dir
        self.port: int = server.server_address[1]
        self.authority_host = f"https://127.0.0.1:{self.port}"
        self.graph_url = f"{self.authority_host}/v1.0"
        self.ca_path = ca_path
        self.client_id = app.client_id
        self.client_secret = app.client_secret
        self.store: TenantStore = core.store
        self.options: SimulatorOptions = core.options
        self.counters: Counters = core.counters
        org = core.store.organization()
        self.tenant_id: str = org["id"]
        self.tenant_name: str = org.get("displayName", "Simulated tenant")
        self.domain: str = org.get("domain", "")
        self._stopped = False

    @property
    def authority(self) -> str:
        """The msal authority URL."""
        return f"{self.authority_host}/{self.tenant_id}"

    def environment(self) -> dict[str, str]:
        """The variables that point m365batch (or any Azure SDK client) at this tenant."""
        return {
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_CLIENT_ID": self.client_id,
            "AZURE_CLIENT_SECRET": self.client_secret,
            "AZURE_AUTHORITY_HOST": self.authority_host,
            "M365BATCH_GRAPH_URL": self.graph_url,
            "REQUESTS_CA_BUNDLE": str(self.ca_path),
        }

    def add_app(
        self, roles: list[str], *, certificate_pem: bytes | None = None, secret: str | None = None
    ) -> tuple[str, str | None]:
        """Register another app with ``roles``; returns (client_id, secret or None)."""
        client_id = str(uuid.uuid4())
        if secret is None and certificate_pem is None:
            secret = secrets.token_urlsafe(30)
        certificates = [certificate_record(certificate_pem)] if certificate_pem else []
        self.store.save_app(client_id, "m365batch test app", secret, certificates, roles)
        return client_id, secret

    def stop(self) -> None:
        """Stop serving and close the state."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._server.close_all()
        self._thread.join(timeout=10)
        self.store.close()

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _device_login(core: _Core, method: str, query: str, body: bytes) -> Reply:
    """The device-code page: a sign-in form (GET); the admin signs in and confirms (POST)."""
    if method != "POST":
        code = html.escape(dict(parse_qsl(query)).get("code", ""))
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in</title>'
            '</head><body><h1>Enter code</h1><form method="post">'
            f'<p><label>Code <input name="code" value="{code}"></label></p>'
            '<p><label>User <input name="username"></label></p>'
            '<p><label>Password <input name="password" type="password"></label></p>'
            "<p><button>Sign in</button></p></form></body></html>"
        )
        return Reply(200, page, {"Content-Type": "text/html; charset=utf-8"})
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    approved = core.authority.approve_device(
        form.get("code", ""), form.get("username", ""), form.get("password", "")
    )
    return Reply(
        200 if approved else 401,
        {
            "signedIn": approved,
            "message": "You have signed in to m365batch on your device."
            if approved
            else "Wrong user, password or code: sign in as the tenant's admin.",
        },
    )


def start_simulator(
    state_dir: Path,
    options: SimulatorOptions | None = None,
    *,
    port: int = 0,
    seed_path: Path | None = None,
) -> RunningSimulator:
    """Start the simulated tenant on 127.0.0.1 in a background thread."""
    state_dir = Path(state_dir)
    options = options or SimulatorOptions()
    opened = open_state(state_dir, seed_path)
    tls, store = opened.tls, opened.store
    tenant_id = store.meta("tenant_id") or ""
    authority = Authority(store, tls.signing_key_path, options)
    core = _Core(store, authority, Service(store, options, tenant_id), options)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert_path, tls.key_path)
    server = _Server(("127.0.0.1", port), core, context)
    core.authority_host = f"https://127.0.0.1:{server.server_address[1]}"
    core.graph_url = f"{core.authority_host}/v1.0"
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.2},
        name=f"simulator-{server.server_address[1]}",
        daemon=True,
    )
    thread.start()
    return RunningSimulator(server, thread, core, state_dir, tls.ca_path, opened.app)
