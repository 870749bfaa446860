"""The process and its storage: public endpoints, `keyplane init`, SIGTERM, no plaintext at rest."""

from __future__ import annotations

import json
import signal
import time

import pytest

from kputil import assert_error, run_cli, secret_fragments, uniq

# ------------------------------------------------------------------ public endpoints


@pytest.mark.parametrize("key", [None, "garbage"], ids=["no-auth", "bad-auth"])
def test_health_endpoints_need_no_key(server, key):
    for path in ("/healthz", "/readyz"):
        resp = server.http("GET", path, key=key)
        assert resp.status == 200, (path, resp)


@pytest.mark.parametrize("key", [None, "garbage"], ids=["no-auth", "bad-auth"])
def test_openapi_document_needs_no_key(server, key):
    resp = server.http("GET", "/v1/openapi.json", key=key)
    assert resp.status == 200, resp
    assert resp.headers.get("content-type", "").startswith("application/json"), resp
    doc = resp.json()
    assert isinstance(doc, dict)
    assert str(doc.get("openapi", "")).startswith("3."), f"not an OpenAPI 3 document: {resp!r}"
    paths = doc.get("paths") or {}
    assert any("admin_api_keys" in p for p in paths), sorted(paths)[:20]
    assert any(p.rstrip("/").endswith("/projects") for p in paths), sorted(paths)[:20]


def test_openapi_is_the_only_public_v1_route(server):
    assert_error(server.http("GET", "/v1/organization/projects", key=None), 401)
    assert_error(server.http("GET", "/v1/organization/audit_logs", key=None), 401)


# ------------------------------------------------------------------ init


def test_second_init_fails_and_changes_nothing(server, client):
    before = sorted(k.id for k in client.admin.organization.admin_api_keys.list(limit=100))
    res = run_cli("init", "--database-url", server.db_url, "--owner-email", "intruder@x.test")
    assert res.returncode != 0, res
    assert "sk-admin-" not in res.stdout and "sk-admin-" not in res.stderr
    assert res.stdout.strip() == ""
    after = sorted(k.id for k in client.admin.organization.admin_api_keys.list(limit=100))
    assert after == before
    # The existing admin key still works.
    resp = server.org("GET", "/projects?limit=1")
    assert resp.status == 200, resp


# ------------------------------------------------------------------ shutdown and restart


def test_sigterm_exits_zero_and_state_survives_restart(fresh_server):
    srv = fresh_server()
    p = srv.create_project(uniq("persist"))
    k = srv.create_admin_key()
    pk = srv.create_project_key(p["id"])
    # Use the new admin key, then stop at once: the pending last_used_at must be flushed.
    assert srv.org("GET", "/projects", key=k["value"]).status == 200
    t0 = time.monotonic()
    rc = srv.stop(signal.SIGTERM, timeout=10)
    elapsed = time.monotonic() - t0
    assert rc == 0, f"exit code {rc}\n{srv.log_text()[-3000:]}"
    assert elapsed < 5, f"took {elapsed:.1f}s to stop"

    srv.start()
    assert srv.ok("GET", f"/projects/{p['id']}")["name"] == p["name"]
    got = srv.ok("GET", f"/admin_api_keys/{k['id']}")
    assert isinstance(got["last_used_at"], int), got
    # Keys still authenticate after the restart.
    assert srv.org("GET", "/projects", key=k["value"]).status == 200
    assert srv.http("GET", "/v1/models", key=pk["value"]).status != 401
    assert srv.stop(signal.SIGTERM) == 0


def test_sigterm_while_idle_connection_open(fresh_server):
    """A kept-alive idle client connection must not hold up the shutdown."""
    import socket

    srv = fresh_server()
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    try:
        sock.sendall(
            f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n\r\n".encode()
        )
        assert b"200" in sock.recv(4096)
        t0 = time.monotonic()
        assert srv.stop(signal.SIGTERM, timeout=10) == 0
        assert time.monotonic() - t0 < 5
    finally:
        sock.close()


# ------------------------------------------------------------------ plaintext never at rest


def _mint_everything(srv) -> list[str]:
    values = [srv.admin_key]
    for _ in range(3):
        values.append(srv.create_admin_key()["value"])
    values.append(srv.create_admin_key(scopes=["api.management.read"])["value"])
    c = srv.client()
    for _ in range(2):
        p = srv.create_project(uniq("secret"))
        values.append(srv.create_project_key(p["id"])["value"])
        values.append(srv.create_project_key(p["id"], scopes=["model.request"], expires_in_seconds=60)["value"])
        sa = c.admin.organization.projects.service_accounts.create(p["id"], name="sa")
        values.append(sa.api_key.value)
        values.append(
            c.admin.organization.projects.service_accounts.api_keys.create(
                sa.id, project_id=p["id"], name="extra"
            ).value
        )
        bare = c.admin.organization.projects.service_accounts.create(
            p["id"], name="bare", create_service_account_only=True
        )
        values.append(
            c.admin.organization.projects.service_accounts.api_keys.create(
                bare.id, project_id=p["id"]
            ).value
        )
    # Use every key once, plus some failing attempts that carry (near-)secrets.
    for v in values:
        path = "/v1/organization/projects" if v.startswith("sk-admin-") else "/v1/models"
        srv.http("GET", path, key=v)
        srv.http("GET", path, key=v[:-1] + "0")
    return values


def _assert_absent(blob: bytes | str, values: list[str], where: str) -> None:
    data = blob.encode() if isinstance(blob, str) else blob
    for v in values:
        for fragment in secret_fragments(v):
            assert fragment.encode() not in data, f"key material found in {where}"
            assert fragment.encode().hex().encode() not in data, f"hex key material in {where}"


def test_no_plaintext_key_at_rest(fresh_server, backend):
    srv = fresh_server()
    values = _mint_everything(srv)
    assert len(values) >= 14
    # Let the last_used_at flush run, so those writes are covered too.
    time.sleep(1.5)

    if backend == "sqlite":
        running = {p.name: p.read_bytes() for p in srv.db.files()}
        assert "kp.db" in running, running.keys()
        for name, data in running.items():
            _assert_absent(data, values, f"{name} (server running)")
        assert srv.stop(signal.SIGTERM) == 0
        stopped = {p.name: p.read_bytes() for p in srv.db.files()}
        for name, data in stopped.items():
            _assert_absent(data, values, f"{name} (server stopped)")
        # The WAL was either checkpointed into kp.db or is still there: both were read.
        assert sum(len(d) for d in stopped.values()) > 0
    else:
        _assert_absent(srv.db.dump_text(), values, "the PostgreSQL database")
        assert srv.stop(signal.SIGTERM) == 0
        _assert_absent(srv.db.dump_text(), values, "the PostgreSQL database (stopped)")

    # Nor in the server's logs (the initial key is printed by `init` on stdout only).
    _assert_absent(srv.log_text(), values, "the server log")


def test_audit_log_of_a_fresh_server_has_no_secret(fresh_server):
    srv = fresh_server()
    values = _mint_everything(srv)
    body = srv.ok("GET", "/audit_logs?limit=100")
    text = json.dumps(body)
    _assert_absent(text, values, "the audit log")
    types = {e["type"] for e in body["data"]}
    assert {"project.created", "api_key.created", "service_account.created"} <= types

