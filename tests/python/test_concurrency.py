"""Concurrent requests (bounded: a few dozen requests from a small thread pool, loopback only)."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from kputil import assert_list_envelope, uniq, walk

THREADS = 16


def _together(n: int, fn):
    """Runs fn(i) for i in range(n) on n threads released at the same instant."""
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait(timeout=10)
        return fn(i)

    with ThreadPoolExecutor(n) as ex:
        return list(ex.map(run, range(n)))


def test_concurrent_creates(server, project):
    def work(i):
        statuses = []
        ids = []
        for j in range(4):
            r = server.org(
                "POST", f"/projects/{project['id']}/api_keys", json_body={"name": f"c{i}-{j}"}
            )
            statuses.append(r.status)
            if r.status == 200:
                ids.append(r.json()["id"])
                server.remember(r.json()["value"])
            r = server.org("GET", f"/projects/{project['id']}/api_keys?limit=3")
            statuses.append(r.status)
        return statuses, ids

    results = _together(THREADS, work)
    statuses = Counter(s for st, _ in results for s in st)
    assert statuses == Counter({200: THREADS * 8}), statuses
    created = [i for _, ids in results for i in ids]
    assert len(created) == len(set(created)) == THREADS * 4
    listed = [k["id"] for k in walk(server, f"/projects/{project['id']}/api_keys", limit=10)]
    assert sorted(listed) == sorted(created)


def test_concurrent_project_creates(server):
    names = [uniq("conc") for _ in range(THREADS)]
    results = _together(THREADS, lambda i: server.org("POST", "/projects", json_body={"name": names[i]}))
    assert [r.status for r in results] == [200] * THREADS, results
    ids = {r.json()["id"] for r in results}
    assert len(ids) == THREADS
    assert ids <= {p["id"] for p in walk(server, "/projects", limit=100)}


def _delete_race(server, path: str) -> list[int]:
    return sorted(r.status for r in _together(10, lambda i: server.org("DELETE", path)))


def test_concurrent_deletes_of_one_object_succeed_once(server, project):
    """Ten simultaneous DELETEs of one object: one 200, nine 404 (as when sent one by one)."""
    k = server.create_project_key(project["id"])
    sa = server.create_service_account(project["id"])
    a = server.create_admin_key()
    for path in (
        f"/projects/{project['id']}/api_keys/{k['id']}",
        f"/projects/{project['id']}/service_accounts/{sa['id']}",
        f"/admin_api_keys/{a['id']}",
    ):
        statuses = _delete_race(server, path)
        assert statuses == [200] + [404] * 9, f"DELETE {path}: {statuses}"
    # The audit log records each deletion once.
    events = assert_list_envelope(server.ok("GET", "/audit_logs?limit=20"))
    deleted = Counter(
        e[e["type"]]["id"] for e in events if e["type"] in ("api_key.deleted", "service_account.deleted")
    )
    assert deleted[k["id"]] == 1 and deleted[sa["id"]] == 1 and deleted[a["id"]] == 1, deleted
