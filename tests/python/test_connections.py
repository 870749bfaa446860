"""Connections that hold a serving thread's resources without sending requests.

A client that trickles its request headers (slowloris), or leaves a kept-alive connection idle,
is cut off after the client timeout (`KEYPLANE_CLIENT_TIMEOUT_SECS`); one that holds back its
request body gets a 408 once it has been silent that long. A client that keeps sending is
served however long it takes.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import time

HEADER_TIMEOUT_SECS = 1
# Far above the timeout: a server without one never closes these connections.
WAIT_SECS = 10


def seconds_until_closed(sock: socket.socket, trickle: bytes | None = None) -> float | None:
    """Seconds until the server closes `sock` (EOF or reset), or None if it is still open
    after WAIT_SECS. With `trickle`, sends it every quarter second meanwhile."""
    start = time.monotonic()
    while time.monotonic() - start < WAIT_SECS:
        readable, _, _ = select.select([sock], [], [], 0.25)
        if readable:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                return time.monotonic() - start
            assert data == b"", f"the server answered instead of closing: {data[:200]!r}"
            return time.monotonic() - start
        if trickle is not None:
            try:
                sock.sendall(trickle)
            except OSError:
                return time.monotonic() - start
    return None


def timed_server(fresh_server):
    return fresh_server(env={"KEYPLANE_CLIENT_TIMEOUT_SECS": str(HEADER_TIMEOUT_SECS)})


def send_body_slowly(port: int, path: str, key: str, body: bytes, parts: int, gap: float):
    """POSTs `body` in `parts` pieces `gap` seconds apart; returns (status, parsed JSON)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECS) as sock:
        sock.sendall(head)
        size = -(-len(body) // parts)
        for i in range(0, len(body), size):
            if i:
                time.sleep(gap)
            try:
                sock.sendall(body[i : i + size])
            except OSError:
                break  # the server answered and closed
        resp = http.client.HTTPResponse(sock, method="POST")
        resp.begin()
        return resp.status, json.loads(resp.read())


def test_a_client_trickling_its_headers_is_cut_off(fresh_server):
    srv = timed_server(fresh_server)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed = seconds_until_closed(sock, trickle=b"X-Slow: a\r\n")
    assert closed is not None, "a connection still sending its headers after 10 s was kept"
    assert closed >= HEADER_TIMEOUT_SECS * 0.9, closed
    # The server still serves everyone else.
    assert srv.http("GET", "/healthz", key=None).status == 200


def test_an_idle_kept_alive_connection_is_closed(fresh_server):
    srv = timed_server(fresh_server)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        resp = http.client.HTTPResponse(sock, method="GET")
        resp.begin()
        assert resp.status == 200
        assert not resp.will_close
        resp.read()
        closed = seconds_until_closed(sock)
    assert closed is not None, "an idle kept-alive connection was kept for 10 s"


def test_a_busy_connection_outlives_the_timeout(fresh_server):
    srv = timed_server(fresh_server)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        first = None
        start = time.monotonic()
        # Requests half a timeout apart, for three timeouts: every request restarts the clock.
        while time.monotonic() - start < 3 * HEADER_TIMEOUT_SECS:
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            assert resp.status == 200
            resp.read()
            first = first or conn.sock
            assert conn.sock is first, "the server closed a connection in use"
            time.sleep(HEADER_TIMEOUT_SECS / 2)
    finally:
        conn.close()


def test_a_request_body_held_back_gets_a_408(fresh_server):
    srv = timed_server(fresh_server)
    project = srv.create_project()
    key = srv.create_project_key(project["id"])["value"]
    chat = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi " * 20}]}
    ).encode()
    cases = [
        ("/v1/chat/completions", key, chat),
        ("/v1/organization/projects", srv.admin_key, json.dumps({"name": "slow"}).encode()),
    ]
    for path, k, body in cases:
        # Half the body, then silence longer than the timeout.
        start = time.monotonic()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {k}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT_SECS) as sock:
            sock.sendall(head + body[: len(body) // 2])
            resp = http.client.HTTPResponse(sock, method="POST")
            resp.begin()
            status, err = resp.status, json.loads(resp.read())
        assert status == 408, (path, status, err)
        assert err["error"]["code"] == "request_timeout", err
        assert err["error"]["type"] == "invalid_request_error", err
        assert time.monotonic() - start >= HEADER_TIMEOUT_SECS * 0.9
    # Nothing was created by the abandoned admin request.
    names = [p["name"] for p in srv.ok("GET", "/projects?limit=100")["data"]]
    assert "slow" not in names


def test_a_body_sent_slowly_but_steadily_is_served(fresh_server):
    srv = timed_server(fresh_server)
    body = json.dumps({"name": "steady"}).encode()
    # Four parts half a timeout apart: 1.5 timeouts in all, so a deadline counted from the
    # first byte would have fired.
    status, project = send_body_slowly(
        srv.port, "/v1/organization/projects", srv.admin_key, body, parts=4,
        gap=HEADER_TIMEOUT_SECS / 2,
    )
    assert status == 200, project
    assert project["name"] == "steady"
