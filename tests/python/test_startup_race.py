"""Several instances started at once on one empty database: one set of migrations, one
organization, one admin key printed, and all of them serve it."""

from __future__ import annotations

import re
import threading

import pytest

import kputil

ADMIN_KEY = re.compile(r"sk-admin-[0-9A-Za-z]{58}")


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_three_instances_start_at_once_on_an_empty_database(backend, workdir):
    db = kputil.Database(backend, workdir)
    servers = [kputil.Server(backend, db, f"race-{backend}-{i}") for i in range(3)]
    errors: list[BaseException] = []

    def start(s: kputil.Server) -> None:
        try:
            s.start()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors
        printed = [k for s in servers for k in ADMIN_KEY.findall(s.log_text())]
        assert len(printed) == 1, f"exactly one instance initializes the organization: {printed}"
        key = printed[0]
        for s in servers:
            s.admin_key = key
            assert kputil.http_request(s.port, "GET", "/readyz").status == 200
        # One organization: what one instance writes, the others read.
        created = servers[0].ok("POST", "/projects", json_body={"name": "race"})
        for s in servers[1:]:
            assert s.ok("GET", f"/projects/{created['id']}")["name"] == "race"
    finally:
        for s in servers:
            s.kill()
        db.drop()
