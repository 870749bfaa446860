"""Service accounts: /v1/organization/projects/{project_id}/service_accounts."""

from __future__ import annotations

import openai
import pytest

from kputil import assert_error, assert_key_value, now, uniq


def test_create_with_key(server, client, project):
    sas = client.admin.organization.projects.service_accounts
    name = uniq("bot")
    before = now()
    sa = sas.create(project["id"], name=name)
    server.remember(sa.api_key.value if sa.api_key else None)
    assert sa.object == "organization.project.service_account"
    assert sa.id and sa.name == name
    assert sa.role == "member"
    assert before - 2 <= sa.created_at <= now() + 2
    key = sa.api_key
    assert key is not None
    assert key.object == "organization.project.service_account.api_key"
    assert key.id.startswith("key_")
    assert_key_value(key.value, "service_account")
    assert key.value.startswith("sk-svcacct-")
    assert isinstance(key.name, str) and key.name
    assert isinstance(key.created_at, int)
    # The key is listed under the project, owned by the service account, without its value.
    listed = client.admin.organization.projects.api_keys.retrieve(key.id, project_id=project["id"])
    assert listed.owner.type == "service_account"
    assert listed.owner.service_account.id == sa.id
    assert "value" not in listed.model_dump()


def test_create_with_expiry(server, client, project):
    sa = client.admin.organization.projects.service_accounts.create(
        project["id"], name=uniq("exp"), expires_in_seconds=120
    )
    server.remember(sa.api_key.value)
    assert sa.api_key.expires_at is not None
    assert abs(sa.api_key.expires_at - (sa.api_key.created_at + 120)) <= 1


def test_create_service_account_only(server, client, project):
    sas = client.admin.organization.projects.service_accounts
    sa = sas.create(project["id"], name=uniq("bare"), create_service_account_only=True)
    assert sa.role == "none"
    assert sa.api_key is None
    raw = server.ok("GET", f"/projects/{project['id']}/service_accounts/{sa.id}")
    assert raw["role"] == "none"
    keys = client.admin.organization.projects.api_keys.list(project["id"], owner_project_access="any")
    assert all(
        k.owner.service_account is None or k.owner.service_account.id != sa.id for k in keys
    )


def test_list_retrieve_update_delete(server, client, project):
    sas = client.admin.organization.projects.service_accounts
    a = sas.create(project["id"], name=uniq("a"))
    b = sas.create(project["id"], name=uniq("b"))
    server.remember(a.api_key.value)
    server.remember(b.api_key.value)

    listed = list(sas.list(project["id"]))
    assert [s.id for s in listed] == [a.id, b.id]
    assert all(s.object == "organization.project.service_account" for s in listed)

    got = sas.retrieve(a.id, project_id=project["id"])
    assert (got.id, got.name, got.role, got.created_at) == (a.id, a.name, "member", a.created_at)

    upd = sas.update(a.id, project_id=project["id"], name="renamed", role="owner")
    assert upd.name == "renamed" and upd.role == "owner"
    got = sas.retrieve(a.id, project_id=project["id"])
    assert got.name == "renamed" and got.role == "owner"
    upd = sas.update(a.id, project_id=project["id"], role="member")
    assert upd.name == "renamed" and upd.role == "member"

    d = sas.delete(a.id, project_id=project["id"])
    assert d.id == a.id and d.deleted is True
    assert d.object == "organization.project.service_account.deleted"
    with pytest.raises(openai.NotFoundError):
        sas.retrieve(a.id, project_id=project["id"])
    with pytest.raises(openai.NotFoundError):
        sas.delete(a.id, project_id=project["id"])
    assert [s.id for s in sas.list(project["id"])] == [b.id]


def test_invalid_role(server, project):
    sa = server.create_service_account(project["id"])
    resp = server.org(
        "POST",
        f"/projects/{project['id']}/service_accounts/{sa['id']}",
        json_body={"role": "admin"},
    )
    assert_error(resp, 400, param="role")


def test_delete_removes_its_keys(server, client, project):
    sas = client.admin.organization.projects.service_accounts
    sa = sas.create(project["id"], name=uniq("doomed"))
    server.remember(sa.api_key.value)
    extra = sas.api_keys.create(sa.id, project_id=project["id"], name="second")
    server.remember(extra.value)
    key_ids = {sa.api_key.id, extra.id}
    for value in (sa.api_key.value, extra.value):
        assert server.http("GET", "/v1/models", key=value).status != 401

    sas.delete(sa.id, project_id=project["id"])

    for access in ("active", "inactive", "any"):
        listed = client.admin.organization.projects.api_keys.list(
            project["id"], owner_project_access=access
        )
        assert not key_ids & {k.id for k in listed}, access
    for kid in key_ids:
        with pytest.raises(openai.NotFoundError):
            client.admin.organization.projects.api_keys.retrieve(kid, project_id=project["id"])
    for value in (sa.api_key.value, extra.value):
        assert_error(server.http("GET", "/v1/models", key=value), 401, code="invalid_api_key")


def test_create_additional_key(server, client, project):
    sas = client.admin.organization.projects.service_accounts
    sa = sas.create(project["id"], name=uniq("multi"), create_service_account_only=True)
    k = sas.api_keys.create(
        sa.id, project_id=project["id"], name="ci-key", scopes=["api.model.read"]
    )
    server.remember(k.value)
    assert k.object == "organization.project.service_account.api_key"
    assert k.name == "ci-key"
    assert_key_value(k.value, "service_account")
    assert k.model_dump().get("scopes") == ["api.model.read"]
    listed = client.admin.organization.projects.api_keys.retrieve(k.id, project_id=project["id"])
    assert listed.name == "ci-key"
    assert listed.owner.service_account.id == sa.id
    assert server.http("GET", "/v1/models", key=k.value).status != 401

    # Without a body: a default name, all permissions.
    resp = server.org("POST", f"/projects/{project['id']}/service_accounts/{sa.id}/api_keys")
    assert resp.status == 200, resp
    body = resp.json()
    server.remember(body["value"])
    assert_key_value(body["value"], "service_account")
    assert body["name"]

    # Unknown scope.
    resp = server.org(
        "POST",
        f"/projects/{project['id']}/service_accounts/{sa.id}/api_keys",
        json_body={"scopes": ["nope"]},
    )
    assert_error(resp, 400, param="scopes")


def test_unknown_ids(server, client, project):
    sas = client.admin.organization.projects.service_accounts
    with pytest.raises(openai.NotFoundError):
        sas.retrieve("svc_acct_doesnotexist", project_id=project["id"])
    with pytest.raises(openai.NotFoundError):
        sas.api_keys.create("svc_acct_doesnotexist", project_id=project["id"], name="x")
    with pytest.raises(openai.NotFoundError):
        sas.list("proj_doesnotexist")
    with pytest.raises(openai.NotFoundError):
        sas.create("proj_doesnotexist", name="x")
    # A service account of another project.
    other = server.create_project()
    sa = server.create_service_account(other["id"])
    with pytest.raises(openai.NotFoundError):
        sas.retrieve(sa["id"], project_id=project["id"])
    with pytest.raises(openai.NotFoundError):
        sas.delete(sa["id"], project_id=project["id"])
    assert sas.retrieve(sa["id"], project_id=other["id"]).id == sa["id"]


def test_service_account_key_on_admin_route(server, project):
    sa = server.create_service_account(project["id"])
    value = sa["api_key"]["value"]
    resp = server.org("GET", "/projects", key=value)
    err = assert_error(resp, 401, excludes=(value,))
    assert "admin key" in err["message"]
