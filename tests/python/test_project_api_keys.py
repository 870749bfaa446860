"""Project API keys: /v1/organization/projects/{project_id}/api_keys (+ Keyplane's create)."""

from __future__ import annotations

import openai
import pytest

from kputil import (
    OWNER_EMAIL,
    assert_error,
    assert_key_value,
    assert_list_envelope,
    assert_redacted,
    now,
    uniq,
)


def test_create_extension_shape(server, project):
    name = uniq("pk")
    before = now()
    resp = server.org(
        "POST",
        f"/projects/{project['id']}/api_keys",
        json_body={"name": name, "scopes": ["api.model.read", "model.request"]},
    )
    assert resp.status == 200, resp
    k = resp.json()
    server.remember(k.get("value"))
    assert k["object"] == "organization.project.api_key"
    assert k["id"].startswith("key_")
    assert k["name"] == name
    assert_key_value(k["value"], "project")
    assert k["value"].startswith("sk-proj-")
    assert_redacted(k["redacted_value"], k["value"])
    assert before - 2 <= k["created_at"] <= now() + 2
    assert k["last_used_at"] is None
    assert k["expires_at"] is None
    assert k["owner_project_access"] == "active"
    assert sorted(k["scopes"]) == ["api.model.read", "model.request"]
    owner = k["owner"]
    assert owner["type"] == "user"
    user = owner["user"]
    assert set(user) >= {"id", "email", "name", "created_at", "role"}, user
    assert user["email"] == OWNER_EMAIL
    assert isinstance(user["created_at"], int)
    assert isinstance(user["id"], str) and user["id"]
    assert isinstance(user["name"], str)
    assert isinstance(user["role"], str) and user["role"]


def test_create_with_expiry_and_all_permissions(server, project):
    k = server.create_project_key(project["id"], expires_in_seconds=600)
    assert abs(k["expires_at"] - (k["created_at"] + 600)) <= 1
    assert k["scopes"] is None  # all permissions


def test_sdk_retrieve_list_delete(server, client, project):
    api_keys = client.admin.organization.projects.api_keys
    k = server.create_project_key(project["id"])

    got = api_keys.retrieve(k["id"], project_id=project["id"])
    assert got.object == "organization.project.api_key"
    assert got.id == k["id"] and got.name == k["name"]
    assert got.redacted_value == k["redacted_value"]
    assert got.owner_project_access == "active"
    assert got.owner.type == "user"
    assert got.owner.user.email == OWNER_EMAIL
    assert "value" not in got.model_dump()

    for access in (None, "active", "any"):
        kw = {} if access is None else {"owner_project_access": access}
        ids = [x.id for x in api_keys.list(project["id"], limit=100, **kw)]
        assert ids.count(k["id"]) == 1, (access, ids)
    assert k["id"] not in [x.id for x in api_keys.list(project["id"], owner_project_access="inactive")]

    raw = server.org("GET", f"/projects/{project['id']}/api_keys?owner_project_access=any")
    assert raw.status == 200 and k["value"] not in raw.text
    for item in assert_list_envelope(raw.json()):
        assert "value" not in item

    d = api_keys.delete(k["id"], project_id=project["id"])
    assert d.id == k["id"] and d.deleted is True
    assert d.object == "organization.project.api_key.deleted"
    with pytest.raises(openai.NotFoundError):
        api_keys.retrieve(k["id"], project_id=project["id"])
    with pytest.raises(openai.NotFoundError):
        api_keys.delete(k["id"], project_id=project["id"])
    assert k["id"] not in [
        x.id for x in api_keys.list(project["id"], owner_project_access="any")
    ]


def test_deleted_key_stops_authenticating(server, client, project):
    k = server.create_project_key(project["id"])
    assert server.http("GET", "/v1/models", key=k["value"]).status != 401
    client.admin.organization.projects.api_keys.delete(k["id"], project_id=project["id"])
    assert_error(
        server.http("GET", "/v1/models", key=k["value"]), 401, code="invalid_api_key"
    )


def test_key_of_another_project_is_not_found(server, client, project):
    other = server.create_project()
    k = server.create_project_key(other["id"])
    with pytest.raises(openai.NotFoundError):
        client.admin.organization.projects.api_keys.retrieve(k["id"], project_id=project["id"])
    with pytest.raises(openai.NotFoundError):
        client.admin.organization.projects.api_keys.delete(k["id"], project_id=project["id"])
    assert client.admin.organization.projects.api_keys.retrieve(
        k["id"], project_id=other["id"]
    ).id == k["id"]


def test_admin_key_is_not_a_project_key(server, client, project):
    admin_id = server.ok("GET", "/admin_api_keys?limit=1")["data"][0]["id"]
    with pytest.raises(openai.NotFoundError):
        client.admin.organization.projects.api_keys.retrieve(admin_id, project_id=project["id"])


def test_sdk_update_scopes_and_expiry(server, client, project):
    api_keys = client.admin.organization.projects.api_keys
    k = server.create_project_key(project["id"])
    upd = api_keys.update(
        k["id"],
        project_id=project["id"],
        scopes=["api.responses.write", "api.model.read"],
        expires_in_seconds=3600,
    )
    assert upd.id == k["id"]
    assert sorted(upd.model_dump()["scopes"]) == ["api.model.read", "api.responses.write"]
    assert upd.expires_at is not None and abs(upd.expires_at - (now() + 3600)) <= 3
    got = server.ok("GET", f"/projects/{project['id']}/api_keys/{k['id']}")
    assert sorted(got["scopes"]) == ["api.model.read", "api.responses.write"]
    assert got["expires_at"] == upd.expires_at
    assert got["name"] == k["name"]
    # The key still works after the update.
    assert server.http("GET", "/v1/models", key=k["value"]).status != 401


def test_raw_update_name_and_clear_expiry(server, project):
    k = server.create_project_key(project["id"], expires_in_seconds=600)
    path = f"/projects/{project['id']}/api_keys/{k['id']}"
    renamed = server.ok("POST", path, json_body={"name": "renamed key"})
    assert renamed["name"] == "renamed key"
    assert renamed["expires_at"] == k["expires_at"]  # absent field: unchanged
    cleared = server.ok("POST", path, json_body={"expires_in_seconds": None})
    assert cleared["expires_at"] is None
    assert cleared["name"] == "renamed key"
    assert server.ok("GET", path)["expires_at"] is None
    # An empty body changes nothing.
    same = server.ok("POST", path, json_body={})
    assert same["name"] == "renamed key" and same["expires_at"] is None


def test_scopes_null_restores_all_permissions(server, project):
    k = server.create_project_key(project["id"], scopes=["api.model.read"])
    path = f"/projects/{project['id']}/api_keys/{k['id']}"
    assert server.ok("POST", path, json_body={"name": "still restricted"})["scopes"] == [
        "api.model.read"
    ]
    upd = server.ok("POST", path, json_body={"scopes": None})
    assert upd["scopes"] is None
    assert server.ok("GET", path)["scopes"] is None


def test_unknown_scope_is_rejected(server, project):
    resp = server.org(
        "POST",
        f"/projects/{project['id']}/api_keys",
        json_body={"name": "x", "scopes": ["api.model.read", "api.nonsense"]},
    )
    assert_error(resp, 400, param="scopes")
    k = server.create_project_key(project["id"])
    resp = server.org(
        "POST",
        f"/projects/{project['id']}/api_keys/{k['id']}",
        json_body={"scopes": ["root"]},
    )
    assert_error(resp, 400, param="scopes")


def test_unknown_field_is_rejected(server, project):
    resp = server.org(
        "POST",
        f"/projects/{project['id']}/api_keys",
        json_body={"name": "x", "owner": "someone-else"},
    )
    assert_error(resp, 400)
    k = server.create_project_key(project["id"])
    resp = server.org(
        "POST",
        f"/projects/{project['id']}/api_keys/{k['id']}",
        json_body={"nmae": "typo"},
    )
    assert_error(resp, 400)
    assert server.ok("GET", f"/projects/{project['id']}/api_keys/{k['id']}")["name"] == k["name"]


@pytest.mark.parametrize("seconds", [0, -1, 31_536_001])
def test_invalid_expiry(server, project, seconds):
    resp = server.org(
        "POST",
        f"/projects/{project['id']}/api_keys",
        json_body={"name": "x", "expires_in_seconds": seconds},
    )
    assert_error(resp, 400, param="expires_in_seconds")


def test_create_in_unknown_project(server):
    resp = server.org("POST", "/projects/proj_doesnotexist/api_keys", json_body={"name": "x"})
    assert_error(resp, 404)


def test_invalid_owner_project_access(server, project):
    resp = server.org("GET", f"/projects/{project['id']}/api_keys?owner_project_access=all")
    assert_error(resp, 400, param="owner_project_access")


def test_service_account_keys_are_listed_with_their_owner(server, client, project):
    sa = server.create_service_account(project["id"], name="robot")
    keys = list(
        client.admin.organization.projects.api_keys.list(project["id"], owner_project_access="any")
    )
    mine = [k for k in keys if k.id == sa["api_key"]["id"]]
    assert len(mine) == 1
    k = mine[0]
    assert k.owner.type == "service_account"
    assert k.owner.service_account.id == sa["id"]
    assert k.owner.service_account.name == "robot"
    assert k.owner_project_access == "active"
