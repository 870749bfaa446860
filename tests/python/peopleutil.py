"""Helpers for the people tests (users, invites, project members) and the audit-log tests.

Invite tokens and passwords the tests used are remembered per server (`secrets_of`), so the
audit tests can prove none of them reached an event.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

import kputil

PASSWORD = "correct horse battery staple"
TOKEN_RE = re.compile(r"kpinv_[0-9A-Za-z]{43}")

_secrets: dict[int, set[str]] = {}


def secrets_of(server: kputil.Server) -> set[str]:
    """Invite tokens and passwords used on `server` (never key values: see `server.secrets`)."""
    return _secrets.setdefault(id(server), {PASSWORD})


def token_of(invite: Any) -> str:
    """The token in an invite create response's `accept_url` (`…/invite/<token>`)."""
    url = invite["accept_url"] if isinstance(invite, dict) else invite.accept_url
    assert isinstance(url, str) and "/invite/" in url, invite
    token = url.rsplit("/", 1)[1]
    assert TOKEN_RE.fullmatch(token), url
    return token


def invite(server: kputil.Server, email: str, role: str = "reader", projects=None, **kw) -> dict:
    body: dict[str, Any] = {"email": email, "role": role}
    if projects is not None:
        body["projects"] = projects
    created = server.ok("POST", "/invites", json_body=body, **kw)
    secrets_of(server).add(token_of(created))
    return created


def accept(
    server: kputil.Server, token: str, *, name: str | None = "New Person", password: str = PASSWORD
) -> kputil.Response:
    body: dict[str, Any] = {"token": token, "password": password}
    if name is not None:
        body["name"] = name
    resp = server.http("POST", "/v1/invites/accept", json_body=body, key=None)
    if resp.status == 200:
        secrets_of(server).update({token, password})
    return resp


def join(server: kputil.Server, email: str | None = None, role: str = "reader", projects=None) -> dict:
    """Invites `email` and accepts the invite; returns the new User object."""
    email = email or f"{kputil.uniq('person')}@example.com"
    created = invite(server, email, role, projects if projects is not None else [])
    resp = accept(server, token_of(created))
    assert resp.status == 200, resp
    user = resp.json()
    assert user["object"] == "organization.user" and user["email"] == email, user
    return user


def key_for(server: kputil.Server, project_id: str, user_id: str, **extra: Any) -> dict:
    """A project key owned by `user_id` (Keyplane extension `user_id` on key creation)."""
    return server.create_project_key(project_id, user_id=user_id, **extra)


def works(server: kputil.Server, key: str) -> bool:
    """True when the gateway accepts `key` (GET /v1/models through to the mock upstream)."""
    resp = server.http("GET", "/v1/models", key=key)
    if resp.status == 401:
        return False
    assert resp.status == 200, resp
    return True


class InitRun:
    """`keyplane init` on a fresh database with extra environment; keeps stdout and stderr."""

    def __init__(self, backend: str, workdir, env: dict[str, str], label: str):
        self.db = kputil.Database(backend, workdir)
        self.backend = backend
        self.label = label
        res = subprocess.run(
            [
                kputil.BIN,
                "init",
                "--database-url",
                self.db.url,
                "--owner-email",
                kputil.OWNER_EMAIL,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**kputil._env(), **env},
            stdin=subprocess.DEVNULL,
        )
        self.returncode = res.returncode
        self.stdout = res.stdout
        self.stderr = res.stderr
        self.server: kputil.Server | None = None

    def start(self, mock: kputil.Mock) -> kputil.Server:
        srv = kputil.Server(self.backend, self.db, self.label, env=kputil.gateway_env(mock))
        srv.admin_key = self.stdout.strip()
        srv.start()
        self.server = srv
        return srv

    def stored_text(self) -> str:
        """Every stored row as text (SQLite: the users and invites tables)."""
        if self.backend == "postgres":
            return self.db.dump_text()
        import sqlite3

        with sqlite3.connect(self.db.path) as conn:
            rows = conn.execute("SELECT * FROM users").fetchall()
            rows += conn.execute("SELECT * FROM invites").fetchall()
            rows += conn.execute("SELECT * FROM audit_events").fetchall()
        return "\n".join(repr(r) for r in rows)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()  # drops the database too
        else:
            self.db.drop()


def password_file(tmp_path, password: str) -> str:
    path = tmp_path / "owner-password"
    path.write_text(password + "\n")
    os.chmod(path, 0o600)
    return str(path)
