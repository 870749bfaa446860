"""Projects: /v1/organization/projects."""

from __future__ import annotations

import openai
import pytest

from kputil import assert_error, now, uniq


def all_projects(client, include_archived: bool | None = None) -> list:
    kw = {} if include_archived is None else {"include_archived": include_archived}
    return list(client.admin.organization.projects.list(limit=100, **kw))


def test_create_retrieve_update(server, client):
    projects = client.admin.organization.projects
    name = uniq("proj")
    before = now()
    p = projects.create(name=name)
    assert p.object == "organization.project"
    assert p.id.startswith("proj_")
    assert p.name == name
    assert p.status == "active"
    assert p.archived_at is None
    assert before - 2 <= p.created_at <= now() + 2

    got = projects.retrieve(p.id)
    assert (got.id, got.name, got.created_at, got.status) == (p.id, name, p.created_at, "active")

    renamed = projects.update(p.id, name=name + "-renamed")
    assert renamed.id == p.id and renamed.name == name + "-renamed"
    assert renamed.created_at == p.created_at
    assert projects.retrieve(p.id).name == name + "-renamed"

    # An update without a name changes nothing.
    same = projects.update(p.id)
    assert same.name == name + "-renamed"


def test_create_with_residency_and_external_key(server, client):
    p = client.admin.organization.projects.create(
        name=uniq("res"), residency="EU_STORAGE_PROCESSING", external_key_id="ext-123"
    )
    assert p.residency == "EU_STORAGE_PROCESSING"
    assert p.external_key_id == "ext-123"
    got = client.admin.organization.projects.retrieve(p.id)
    assert got.residency == "EU_STORAGE_PROCESSING"
    assert got.external_key_id == "ext-123"


def test_invalid_residency(server):
    resp = server.org("POST", "/projects", json_body={"name": "x", "residency": "MARS"})
    assert_error(resp, 400, param="residency")


def test_list_include_archived(server, client):
    projects = client.admin.organization.projects
    active = projects.create(name=uniq("active"))
    archived = projects.create(name=uniq("archived"))
    projects.archive(archived.id)

    default_ids = [p.id for p in all_projects(client)]
    false_ids = [p.id for p in all_projects(client, include_archived=False)]
    true_ids = [p.id for p in all_projects(client, include_archived=True)]
    assert active.id in default_ids and archived.id not in default_ids
    assert active.id in false_ids and archived.id not in false_ids
    assert active.id in true_ids and archived.id in true_ids
    assert set(false_ids) < set(true_ids)
    for p in all_projects(client, include_archived=True):
        assert p.status in ("active", "archived")
        assert (p.status == "archived") == (p.archived_at is not None)

    assert_error(server.org("GET", "/projects?include_archived=maybe"), 400, param="include_archived")


def test_archive(server, client):
    projects = client.admin.organization.projects
    p = projects.create(name=uniq("arch"))
    t0 = now()
    a = projects.archive(p.id)
    assert a.id == p.id
    assert a.status == "archived"
    assert isinstance(a.archived_at, int) and t0 - 2 <= a.archived_at <= now() + 2
    assert projects.retrieve(p.id).status == "archived"
    # Archiving again is harmless and keeps the first timestamp.
    again = projects.archive(p.id)
    assert again.status == "archived" and again.archived_at == a.archived_at


def test_archived_project_refuses_changes(server, client):
    projects = client.admin.organization.projects
    p = projects.create(name=uniq("frozen"))
    key = server.create_project_key(p.id)
    sa = server.create_service_account(p.id)
    projects.archive(p.id)

    with pytest.raises(openai.BadRequestError):
        projects.update(p.id, name="renamed")
    assert projects.retrieve(p.id).name == p.name
    assert_error(server.org("POST", f"/projects/{p.id}", json_body={"name": "x"}), 400)

    # No new keys or service accounts.
    assert_error(
        server.org("POST", f"/projects/{p.id}/api_keys", json_body={"name": "k"}), 400
    )
    with pytest.raises(openai.BadRequestError):
        projects.service_accounts.create(p.id, name="sa")
    with pytest.raises(openai.BadRequestError):
        projects.service_accounts.api_keys.create(sa["id"], project_id=p.id, name="k2")
    # Existing keys cannot be changed.
    with pytest.raises(openai.BadRequestError):
        projects.api_keys.update(key["id"], project_id=p.id, scopes=["api.model.read"])
    with pytest.raises(openai.BadRequestError):
        projects.service_accounts.update(sa["id"], project_id=p.id, name="renamed")
    # They are still visible.
    assert projects.api_keys.retrieve(key["id"], project_id=p.id).id == key["id"]


def test_archived_project_keys_stop_authenticating(server, client):
    """There is no gateway yet: any authenticated non-admin /v1 route tells a live key (not
    401) from a dead one (401 invalid_api_key)."""
    p = client.admin.organization.projects.create(name=uniq("dead"))
    key = server.create_project_key(p.id)
    sa = server.create_service_account(p.id)
    for value in (key["value"], sa["api_key"]["value"]):
        assert server.http("GET", "/v1/models", key=value).status != 401
    client.admin.organization.projects.archive(p.id)
    for value in (key["value"], sa["api_key"]["value"]):
        resp = server.http("GET", "/v1/models", key=value)
        assert_error(resp, 401, code="invalid_api_key", excludes=(value,))


def test_unknown_project(server, client):
    with pytest.raises(openai.NotFoundError):
        client.admin.organization.projects.retrieve("proj_doesnotexist")
    with pytest.raises(openai.NotFoundError):
        client.admin.organization.projects.update("proj_doesnotexist", name="x")
    with pytest.raises(openai.NotFoundError):
        client.admin.organization.projects.archive("proj_doesnotexist")
    assert_error(server.org("GET", "/projects/proj_doesnotexist"), 404)


@pytest.mark.parametrize(
    "name",
    [
        "<script>alert(1)</script>",
        "Robert'); DROP TABLE projects;--",
        '" OR 1=1 --',
        "名前 🚀 Ünïcödé Ωμέγα",
        "\u202eevil rtl",
        "%s%n{0}${jndi:ldap://x}",
        "🚀" * 255,
    ],
    ids=["html", "sql", "sql2", "unicode", "rtl", "format", "255-emoji"],
)
def test_hostile_names_are_stored_verbatim(server, client, name):
    projects = client.admin.organization.projects
    p = projects.create(name=name)
    assert p.name == name
    assert projects.retrieve(p.id).name == name
    raw = server.ok("GET", f"/projects/{p.id}")
    assert raw["name"] == name
    assert projects.update(p.id, name=name + "!").name == name + "!"


@pytest.mark.parametrize(
    "name",
    ["", "   ", "a" * 257, "tab\there", "new\nline", "nul\u0000byte"],
    ids=["empty", "blank", "too-long", "tab", "newline", "nul"],
)
def test_invalid_names(server, name):
    assert_error(server.org("POST", "/projects", json_body={"name": name}), 400, param="name")
