"""Cursor pagination: limit/after, has_more, first_id/last_id, SDK auto-pagination."""

from __future__ import annotations

import pytest

from kputil import assert_error, assert_list_envelope, uniq, walk


@pytest.fixture(scope="session")
def many_projects(server):
    """25 projects created in order (on top of whatever other tests created)."""
    return [server.create_project(f"page-{i:02d}-{uniq()}")["id"] for i in range(25)]


def _in_order(ids: list[str], expected: list[str]) -> None:
    assert len(ids) == len(set(ids)), "duplicates in the walk"
    positions = [ids.index(i) for i in expected if i in ids]
    assert len(positions) == len(expected), f"missing: {set(expected) - set(ids)}"
    assert positions == sorted(positions), "created order not kept"


def test_sdk_auto_pagination(server, client, many_projects):
    pages = list(client.admin.organization.projects.list(limit=7).iter_pages())
    seen = [p.id for page in pages for p in page.data]
    _in_order(seen, many_projects)
    assert len(pages) >= 4
    assert all(len(page.data) == 7 for page in pages[:-1])
    # The plain iterator yields the same.
    assert [p.id for p in client.admin.organization.projects.list(limit=7)] == seen
    # And it matches one big page.
    assert seen == [p.id for p in client.admin.organization.projects.list(limit=100)]


def test_manual_walk(server, many_projects):
    items = walk(server, "/projects", limit=7)
    ids = [p["id"] for p in items]
    _in_order(ids, many_projects)
    for p in items:
        assert p["object"] == "organization.project"


@pytest.mark.parametrize("limit", [1, 5, 25, 100])
def test_walks_with_any_limit_agree(server, many_projects, limit):
    reference = [p["id"] for p in walk(server, "/projects", limit=100)]
    assert [p["id"] for p in walk(server, "/projects", limit=limit)] == reference


def test_insert_during_walk(server, many_projects):
    original = [p["id"] for p in walk(server, "/projects", limit=100)]
    added: list[str] = []

    def insert(page_no: int) -> None:
        if page_no in (1, 2):
            for _ in range(3):
                added.append(server.create_project(uniq("mid-walk"))["id"])

    ids = [p["id"] for p in walk(server, "/projects", limit=7, between=insert)]
    assert len(ids) == len(set(ids)), "duplicates"
    assert [i for i in ids if i in set(original)] == original, "gaps or reordering"
    assert set(added) <= set(ids)


def test_archive_cursor_item_during_walk(server, client):
    """The project named by `after` is archived between two pages (include_archived=false)."""
    ids = [server.create_project(uniq("arch-walk"))["id"] for _ in range(6)]
    all_ids = [p["id"] for p in walk(server, "/projects", limit=100)]
    pos = all_ids.index(ids[0])
    q = "limit=3" + (f"&after={all_ids[pos - 1]}" if pos > 0 else "")
    page1 = server.ok("GET", f"/projects?{q}")
    assert [p["id"] for p in page1["data"]] == ids[:3]
    client.admin.organization.projects.archive(page1["last_id"])
    page2 = server.ok("GET", f"/projects?limit=3&after={page1['last_id']}")
    assert [p["id"] for p in page2["data"]] == ids[3:]


def test_empty_list_envelope(server, project):
    for path in (
        f"/projects/{project['id']}/service_accounts",
        f"/projects/{project['id']}/api_keys",
        f"/projects/{project['id']}/api_keys?owner_project_access=inactive",
    ):
        body = server.ok("GET", path)
        assert assert_list_envelope(body) == []
        assert body["first_id"] is None and body["last_id"] is None
        assert body["has_more"] is False


def test_service_accounts_exact_pages(server, client, project):
    ids = [server.create_service_account(project["id"], f"sa-{i}")["id"] for i in range(5)]
    path = f"/projects/{project['id']}/service_accounts"
    p1 = server.ok("GET", f"{path}?limit=2")
    assert [s["id"] for s in p1["data"]] == ids[:2] and p1["has_more"] is True
    assert (p1["first_id"], p1["last_id"]) == (ids[0], ids[1])
    p2 = server.ok("GET", f"{path}?limit=2&after={p1['last_id']}")
    assert [s["id"] for s in p2["data"]] == ids[2:4] and p2["has_more"] is True
    p3 = server.ok("GET", f"{path}?limit=2&after={p2['last_id']}")
    assert [s["id"] for s in p3["data"]] == ids[4:] and p3["has_more"] is False
    p4 = server.ok("GET", f"{path}?limit=2&after={p3['last_id']}")
    assert assert_list_envelope(p4) == []
    # Exactly `limit` items left: has_more is false on that page.
    exact = server.ok("GET", f"{path}?limit=3&after={ids[1]}")
    assert [s["id"] for s in exact["data"]] == ids[2:] and exact["has_more"] is False
    # The SDK walks it too.
    sdk = [s.id for s in client.admin.organization.projects.service_accounts.list(project["id"], limit=2)]
    assert sdk == ids


def test_delete_cursor_item_during_walk(server, client, project):
    ids = [server.create_service_account(project["id"], f"sa-{i}")["id"] for i in range(4)]
    path = f"/projects/{project['id']}/service_accounts"
    p1 = server.ok("GET", f"{path}?limit=2")
    client.admin.organization.projects.service_accounts.delete(
        p1["last_id"], project_id=project["id"]
    )
    p2 = server.ok("GET", f"{path}?limit=2&after={p1['last_id']}")
    assert [s["id"] for s in p2["data"]] == ids[2:]


def test_project_keys_pagination(server, client, project):
    ids = [server.create_project_key(project["id"], f"k-{i}")["id"] for i in range(5)]
    sdk = [
        k.id
        for k in client.admin.organization.projects.api_keys.list(
            project["id"], limit=2, owner_project_access="any"
        )
    ]
    assert sdk == ids
    items = walk(server, f"/projects/{project['id']}/api_keys", limit=2, query="owner_project_access=any")
    assert [k["id"] for k in items] == ids


def test_admin_keys_pagination(server, client):
    ids = [server.create_admin_key(f"pg-{i}-{uniq()}")["id"] for i in range(5)]
    sdk = [k.id for k in client.admin.organization.admin_api_keys.list(limit=2)]
    assert len(sdk) == len(set(sdk))
    _in_order(sdk, ids)
    manual = [k["id"] for k in walk(server, "/admin_api_keys", limit=2)]
    assert manual == sdk


def test_audit_log_pagination(server):
    for _ in range(12):
        server.create_project(uniq("audit-page"))
    items = walk(server, "/audit_logs", limit=9)
    ids = [e["id"] for e in items]
    assert len(ids) == len(set(ids))
    assert len(ids) > 9
    stamps = [e["effective_at"] for e in items]
    assert stamps == sorted(stamps, reverse=True), "not newest first"
    # (Strict SDK listing of the audit log: see test_audit_logs.py.)


LISTS = [
    "/projects",
    "/admin_api_keys",
    "/audit_logs",
    "/projects/{pid}/api_keys",
    "/projects/{pid}/service_accounts",
]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    "limit", ["0", "101", "abc", "-1", "1.5", "", "99999999999999999999"]
)
def test_invalid_limit(server, project, path, limit):
    resp = server.org("GET", path.format(pid=project["id"]) + f"?limit={limit}")
    assert_error(resp, 400, param="limit")


@pytest.mark.parametrize("path", LISTS)
def test_limit_bounds_accepted(server, project, path):
    for limit in (1, 100):
        body = server.ok("GET", path.format(pid=project["id"]) + f"?limit={limit}")
        assert len(assert_list_envelope(body)) <= limit


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    "after",
    ["proj_doesnotexist", "key_0000000000000000", "garbage%27%22", "x" * 300, "%00"],
    ids=["unknown-project", "unknown-key", "quotes", "long", "nul"],
)
def test_invalid_after(server, project, path, after):
    resp = server.org("GET", path.format(pid=project["id"]) + f"?after={after}")
    assert_error(resp, 400, param="after")


def test_after_from_another_list(server, project):
    other = server.create_project()
    sa = server.create_service_account(other["id"])
    resp = server.org("GET", f"/projects/{project['id']}/service_accounts?after={sa['id']}")
    assert_error(resp, 400, param="after")
    resp = server.org("GET", f"/admin_api_keys?after={sa['api_key']['id']}")
    assert_error(resp, 400, param="after")
