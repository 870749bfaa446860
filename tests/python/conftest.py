"""Fixtures: a `keyplane` server per database backend, shared by the whole session.

* `server`  - session-scoped, parametrized over `sqlite` and `postgres`: every test that uses it
  runs once per backend. Started with `keyplane init` + `keyplane serve --listen 127.0.0.1:0`;
  its stderr (JSON logs) goes to tests/python/test-output/<label>.stderr.log.
* `client`  - the official `openai` SDK (strict response validation, no retries) on `server`.
* `fresh_server` - a factory for throw-away servers (same backend) for tests that stop, restart
  or inspect the database of a server.

Environment: KEYPLANE_BIN (default <repo>/target/debug/keyplane), KEYPLANE_TEST_POSTGRES_URL
(default postgres://postgres@127.0.0.1:5432/postgres; an admin connection used to create and
drop one database per server). An unreachable PostgreSQL makes the postgres tests fail.
"""

from __future__ import annotations

import itertools
import os
import shutil
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


@pytest.fixture(scope="session")
def workdir():
    path = Path(tempfile.mkdtemp(prefix="keyplane-tests-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def server(backend, workdir) -> kputil.Server:
    srv = kputil.launch(backend, workdir, label=f"shared-{backend}")
    yield srv
    srv.close()


@pytest.fixture(scope="session")
def client(server):
    return server.client()


@pytest.fixture
def fresh_server(backend, workdir, request):
    """`fresh_server()` starts a new initialized server on a new database of this backend."""
    started: list[kputil.Server] = []

    def make(start: bool = True) -> kputil.Server:
        label = f"fresh-{backend}-{next(_counter)}-{request.node.originalname}"
        db = kputil.Database(backend, workdir)
        srv = kputil.Server(backend, db, label)
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
