"""Admin API keys: /v1/organization/admin_api_keys."""

from __future__ import annotations

import time

import openai
import pytest

from kputil import (
    assert_error,
    assert_key_value,
    assert_redacted,
    now,
    poll,
    uniq,
)


def test_create_retrieve_list_delete(server, client):
    keys = client.admin.organization.admin_api_keys
    name = uniq("admin")
    before = now()
    created = keys.create(name=name)
    server.remember(created.value)
    assert created.object == "organization.admin_api_key"
    assert created.id.startswith("key_")
    assert created.name == name
    assert_key_value(created.value, "admin")
    assert_redacted(created.redacted_value, created.value)
    assert before - 2 <= created.created_at <= now() + 2
    assert created.expires_at is None
    assert created.last_used_at is None
    assert created.owner.type == "user"
    assert created.owner.role == "owner"
    assert created.owner.id

    got = keys.retrieve(created.id)
    assert got.id == created.id and got.name == name
    assert got.redacted_value == created.redacted_value
    assert got.created_at == created.created_at
    assert "value" not in got.model_dump()

    listed = [k for k in keys.list(limit=100) if k.id == created.id]
    assert len(listed) == 1
    assert "value" not in listed[0].model_dump()

    deleted = keys.delete(created.id)
    assert deleted.id == created.id
    assert deleted.deleted is True
    assert deleted.object == "organization.admin_api_key.deleted"

    with pytest.raises(openai.NotFoundError):
        keys.retrieve(created.id)
    assert created.id not in [k.id for k in keys.list(limit=100)]
    with pytest.raises(openai.NotFoundError):
        keys.delete(created.id)


def test_value_only_in_create_response_raw(server):
    created = server.create_admin_key()
    value = assert_key_value(created["value"], "admin")
    got = server.org("GET", f"/admin_api_keys/{created['id']}")
    assert got.status == 200 and "value" not in got.json(), got
    assert value not in got.text
    listing = server.org("GET", "/admin_api_keys?limit=100")
    assert listing.status == 200
    assert value not in listing.text
    for item in listing.json()["data"]:
        assert "value" not in item


def test_create_with_expiry(server, client):
    created = client.admin.organization.admin_api_keys.create(
        name=uniq("exp"), expires_in_seconds=3600
    )
    server.remember(created.value)
    assert created.expires_at is not None
    assert abs(created.expires_at - (created.created_at + 3600)) <= 1
    got = client.admin.organization.admin_api_keys.retrieve(created.id)
    assert got.expires_at == created.expires_at


@pytest.mark.parametrize("seconds", [0, -5, 31_536_001])
def test_create_with_invalid_expiry(server, seconds):
    resp = server.org(
        "POST", "/admin_api_keys", json_body={"name": "bad", "expires_in_seconds": seconds}
    )
    assert_error(resp, 400, param="expires_in_seconds")


def test_expired_key_is_rejected(server):
    created = server.create_admin_key(expires_in_seconds=1)
    value = created["value"]
    time.sleep(max(0.0, created["expires_at"] - time.time()) + 1.1)
    resp = server.org("GET", "/projects", key=value)
    assert_error(resp, 401, code="invalid_api_key", excludes=(value,))


def test_deleted_key_fails_on_its_very_next_request(server, client):
    created = server.create_admin_key()
    value = created["value"]
    # Use it first, so any cache knows it.
    assert server.org("GET", "/admin_api_keys", key=value).status == 200
    client.admin.organization.admin_api_keys.delete(created["id"])
    resp = server.org("GET", "/admin_api_keys", key=value)
    assert_error(resp, 401, code="invalid_api_key", excludes=(value,))


def test_key_can_delete_itself(server):
    created = server.create_admin_key()
    value = created["value"]
    own = server.client(key=value)
    deleted = own.admin.organization.admin_api_keys.delete(created["id"])
    assert deleted.deleted is True
    with pytest.raises(openai.AuthenticationError) as exc:
        own.admin.organization.admin_api_keys.list()
    assert exc.value.status_code == 401
    assert exc.value.code == "invalid_api_key"


def test_new_admin_key_works_through_the_sdk(server):
    created = server.create_admin_key()
    c = server.client(key=created["value"])
    ids = [k.id for k in c.admin.organization.admin_api_keys.list(limit=100)]
    assert created["id"] in ids


def test_restricted_read_only_admin_key(server):
    resp = server.org(
        "POST",
        "/admin_api_keys",
        json_body={"name": uniq("ro"), "scopes": ["api.management.read"]},
    )
    assert resp.status == 200, resp
    ro = resp.json()
    server.remember(ro["value"])
    assert ro["scopes"] == ["api.management.read"]

    c = server.client(key=ro["value"])
    # Reads work.
    assert ro["id"] in [k.id for k in c.admin.organization.admin_api_keys.list(limit=100)]
    c.admin.organization.projects.list(limit=1)
    # Writes do not.
    with pytest.raises(openai.AuthenticationError) as exc:
        c.admin.organization.admin_api_keys.create(name="nope")
    assert exc.value.status_code == 401
    assert "Missing scopes: api.management.write" in exc.value.message

    raw = server.org("POST", "/admin_api_keys", json_body={"name": "nope"}, key=ro["value"])
    assert_error(raw, 401, contains="Missing scopes: api.management.write")
    raw = server.org("POST", "/projects", json_body={"name": "nope"}, key=ro["value"])
    assert_error(raw, 401, contains="Missing scopes: api.management.write")
    raw = server.org("DELETE", f"/admin_api_keys/{ro['id']}", key=ro["value"])
    assert_error(raw, 401, contains="Missing scopes: api.management.write")
    # Nothing was created or deleted.
    assert server.ok("GET", f"/admin_api_keys/{ro['id']}")["id"] == ro["id"]


def test_restricted_key_without_management_scopes(server):
    k = server.create_admin_key(scopes=["api.usage.read"])
    resp = server.org("GET", "/projects", key=k["value"])
    assert_error(resp, 401, contains="Missing scopes: api.management.read")


def test_unknown_scope_is_rejected(server):
    resp = server.org(
        "POST", "/admin_api_keys", json_body={"name": "x", "scopes": ["api.everything"]}
    )
    assert_error(resp, 400, param="scopes")


def test_initial_key_is_listed(server, client):
    keys = list(client.admin.organization.admin_api_keys.list(limit=100))
    initial = [k for k in keys if k.redacted_value.endswith(server.admin_key[-4:])]
    assert initial, keys
    assert initial[0].owner.type == "user"
    assert initial[0].owner.role == "owner"


def test_retrieve_unknown_or_foreign_ids(server, client, project):
    pkey = server.create_project_key(project["id"])
    with pytest.raises(openai.NotFoundError):
        client.admin.organization.admin_api_keys.retrieve("key_0000000000000000")
    # A project key is not an admin key.
    with pytest.raises(openai.NotFoundError):
        client.admin.organization.admin_api_keys.retrieve(pkey["id"])
    with pytest.raises(openai.NotFoundError):
        client.admin.organization.admin_api_keys.delete(pkey["id"])
    # ... and it was not deleted.
    assert server.ok("GET", f"/projects/{project['id']}/api_keys/{pkey['id']}")["id"] == pkey["id"]


def test_list_order_param(server):
    assert server.org("GET", "/admin_api_keys?order=asc").status == 200
    assert_error(server.org("GET", "/admin_api_keys?order=sideways"), 400, param="order")


def test_list_order_desc(server, client):
    keys = client.admin.organization.admin_api_keys
    mine = [server.create_admin_key(f"ord-{i}-{uniq()}")["id"] for i in range(3)]
    asc = [k.id for k in keys.list(limit=2)]
    desc = [k.id for k in keys.list(limit=2, order="desc")]
    assert desc == list(reversed(asc))
    assert desc[:3] == list(reversed(mine))
    first = server.ok("GET", "/admin_api_keys?order=desc&limit=1")
    assert first["data"][0]["id"] == mine[-1] and first["has_more"] is True


def test_last_used_at_is_recorded(server, client):
    created = server.create_admin_key()
    assert client.admin.organization.admin_api_keys.retrieve(created["id"]).last_used_at is None
    t0 = now()
    assert server.org("GET", "/projects?limit=1", key=created["value"]).status == 200

    def used():
        return client.admin.organization.admin_api_keys.retrieve(created["id"]).last_used_at

    last = poll(used, timeout=3.5)
    assert isinstance(last, int), f"last_used_at still {last!r} after 3.5 s"
    assert t0 - 2 <= last <= now() + 2
