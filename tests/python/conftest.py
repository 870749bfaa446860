"""Fixtures: a `keyplane` server per database backend, shared by the whole session.

* `server`  - session-scoped, parametrized over `sqlite` and `postgres`: every test that uses it
  runs once per backend. Started with `keyplane init` + `keyplane serve --listen 127.0.0.1:0`;
  its stderr (JSON logs) goes to tests/python/test-output/<label>.stderr.log.
* `client`  - the official `openai` SDK (strict response validation, no retries) on `server`.
* `fresh_server` - a factory for throw-away servers (same backend) for tests that stop, restart
  or inspect the database of a server.
* `mock`    - one `keyplane-mock-upstream` for the session: every server forwards its gateway
  traffic (`/v1/*` outside `/v1/organization`) there with `kputil.UPSTREAM_KEY`; the shared
  servers also load `kputil.gateway_config()` (short upstream timeout, a priced test model, an
  unreachable and a separately keyed upstream).

Environment: KEYPLANE_BIN (default <repo>/target/debug/keyplane), KEYPLANE_MOCK_BIN (default
<repo>/target/debug/keyplane-mock-upstream), KEYPLANE_TEST_POSTGRES_URL
(default postgres://postgres@127.0.0.1:5432/postgres; an admin connection used to create and
drop one database per server). An unreachable PostgreSQL makes the postgres tests fail.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

import kputil

# The SDK reads these from the environment; the tests must not depend on the caller's shell.
for _var in (
    "OPENAI_ADMIN_KEY",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "OPENAI_BASE_URL",
    "OPENAI_CUSTOM_HEADERS",
):
    os.environ.pop(_var, None)

BACKENDS = ["sqlite", "postgres"]
_counter = itertools.count(1)


def pytest_sessionstart(session):
    if not os.access(kputil.BIN, os.X_OK):
        raise pytest.UsageError(
            f"keyplane binary not found at {kputil.BIN}; build it or set KEYPLANE_BIN"
        )
    if not os.access(kputil.MOCK_BIN, os.X_OK):
        raise pytest.UsageError(
            f"mock upstream not found at {kputil.MOCK_BIN}; build it or set KEYPLANE_MOCK_BIN"
        )


def pytest_sessionfinish(session, exitstatus):
    if kputil.GATEWAY_REDIS:
        kputil.redis_delete_prefix(kputil.GATEWAY_REDIS_PREFIX)


@pytest.fixture(scope="session")
def workdir():
    path = Path(tempfile.mkdtemp(prefix="keyplane-tests-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def mock() -> kputil.Mock:
    m = kputil.Mock("mock-upstream")
    yield m
    m.close()


@pytest.fixture(scope="session")
def dead_port() -> int:
    """A port that refuses connections for the whole session: bound but never listening, so
    no other process can take it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    yield s.getsockname()[1]
    s.close()


@pytest.fixture(scope="session")
def server(backend, workdir, mock, dead_port) -> kputil.Server:
    srv = kputil.launch(
        backend,
        workdir,
        label=f"shared-{backend}",
        env=kputil.gateway_env(mock),
        config=kputil.gateway_config(mock, dead_port),
    )
    srv.mock = mock
    yield srv
    srv.close()


@pytest.fixture(scope="session")
def client(server):
    return server.client()


@pytest.fixture
def fresh_server(backend, workdir, request, mock):
    """`fresh_server()` starts a new initialized server on a new database of this backend,
    forwarding to `mock`; `env` adds environment variables, `config` is a keyplane.toml text."""
    started: list[kputil.Server] = []

    def make(
        start: bool = True, *, env: dict | None = None, config: str | None = None
    ) -> kputil.Server:
        label = f"fresh-{backend}-{next(_counter)}-{request.node.originalname}"
        db = kputil.Database(backend, workdir)
        srv = kputil.Server(
            backend, db, label, env={**kputil.gateway_env(mock), **(env or {})}, config=config
        )
        srv.mock = mock
        started.append(srv)
        srv.init()
        if start:
            srv.start()
        return srv

    yield make
    for srv in started:
        srv.close()


@pytest.fixture
def project(server) -> dict:
    """A new active project on the shared server."""
    return server.create_project()
