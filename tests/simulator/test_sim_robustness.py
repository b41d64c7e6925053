"""Bad requests get Graph-shaped errors: malformed bodies, paths, headers and request lines."""

from __future__ import annotations

import gc
import json
import socket
import ssl
import struct

import pytest
from simhelpers import Graph, error_of

from batch.simulator import RunningSimulator
from batch.simulator.server import _Server


@pytest.mark.parametrize(
    "method, path, body, status",
    [
        ("POST", "/users/o'brien@contoso.example/assignLicense", b"{not json", 400),
        ("POST", "/users/o'brien@contoso.example/assignLicense", b"[1, 2]", 400),
        (
            "POST",
            "/users/o'brien@contoso.example/assignLicense",
            b'{"addLicenses": 5, "removeLicenses": "x"}',
            400,
        ),
        (
            "POST",
            "/users/o'brien@contoso.example/assignLicense",
            b'{"addLicenses": [{"skuId": "not-a-guid"}], "removeLicenses": []}',
            400,
        ),
        (
            "POST",
            "/users/o'brien@contoso.example/assignLicense",
            "\udcff".encode("utf-8", "surrogatepass"),
            400,
        ),
        ("POST", "/$batch", b"\x00\x01\x02", 400),
        ("POST", "/$batch", b'{"requests": "all of them"}', 400),
        ("POST", "/$batch", b'{"requests": [{"id": 1, "method": "GET", "url": "/users"}]}', 400),
        ("GET", "/nosuchthing", b"", 404),
        ("GET", "/users/x/y/z/w", b"", 400),
        ("DELETE", "/subscribedSkus", b"", 405),
        ("PUT", "/users", b"", 405),
        ("GET", "/$batch", b"", 405),
        ("GET", "/users?$filter=(((", b"", 400),
        ("GET", "/users?$filter=userPrincipalName eq 'unterminated", b"", 400),
        ("GET", "/users?$filter=foo eq 'x'", b"", 400),
        ("GET", "/users?$orderby=displayName", b"", 400),
        ("GET", "/users?$top=1&$top=2", b"", 400),
        ("GET", "/users?$bogus=1", b"", 400),
        ("GET", "/users?$filter=assignedLicenses/any(x:x/skuId eq 'abc')", b"", 400),
        ("GET", "/groups/00000000-0000-0000-0000-000000000000", b"", 404),
    ],
)
def test_bad_requests_get_graph_errors(
    graph: Graph, method: str, path: str, body: bytes, status: int
) -> None:
    response = graph.request(
        method,
        path,
        data=body,
        headers={"Content-Type": "application/json", "client-request-id": "my-correlation"},
    )
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["innerError"]["request-id"] == response.headers["request-id"]
    assert response.headers["client-request-id"] == "my-correlation"


def test_unknown_top_level_path_and_version(sim: RunningSimulator, graph: Graph) -> None:
    for url in (f"{sim.authority_host}/beta/users", f"{sim.authority_host}/"):
        response = graph.session.get(url, timeout=10)
        assert response.status_code == 404
        error_of(response)


def _raw(sim: RunningSimulator, payload: bytes) -> bytes:
    context = ssl.create_default_context(cafile=str(sim.ca_path))
    with (
        socket.create_connection(("127.0.0.1", sim.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(payload)
        chunks = []
        while True:
            data = tls.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "payload, status",
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"FROBNICATE /v1.0/users HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"POST /v1.0/$batch HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n", 413),
        (b"POST /v1.0/$batch HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (
            b"POST /v1.0/$batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            411,
        ),
    ],
)
def test_malformed_http_gets_json(sim: RunningSimulator, payload: bytes, status: int) -> None:
    answer = _raw(sim, payload)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == str(status).encode()
    assert b"request-id" in head
    assert "error" in json.loads(body)


def test_untrusting_client_does_not_stall_the_server(sim: RunningSimulator, graph: Graph) -> None:
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as idle:
        idle.sendall(b"\x16\x03\x01")  # half a TLS hello, then silence
        assert graph.get("/organization").status_code == 200
    with (
        pytest.raises(ssl.SSLError),
        socket.create_connection(("127.0.0.1", sim.port), timeout=5) as raw,
    ):
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")
    assert graph.get("/organization").status_code == 200


def test_a_client_that_resets_before_the_handshake_leaves_no_socket_open(
    sim: RunningSimulator,
) -> None:
    """ssl's wrap of an accepted socket whose peer already reset fails after taking the
    descriptor over; the server closes what it made (pytest fails on the unclosed one)."""
    server = _Server(("127.0.0.1", 0), sim._core, ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    try:
        client = socket.create_connection(server.server_address, timeout=5)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # RST, before the server accepts
        with pytest.raises(OSError):
            server.get_request()
        gc.collect()
        assert not server.open_sockets
    finally:
        server.server_close()
