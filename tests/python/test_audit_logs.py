"""Audit log: GET /v1/organization/audit_logs."""

from __future__ import annotations

import json

from kputil import assert_list_envelope, secret_fragments, uniq, walk


def _recent(server, n: int) -> list[dict]:
    body = server.ok("GET", f"/audit_logs?limit={n}")
    return assert_list_envelope(body)


def test_events_newest_first_with_payloads(server, client):
    p = client.admin.organization.projects.create(name=uniq("audited"))
    k = server.create_project_key(p.id, scopes=["api.model.read"])
    client.admin.organization.projects.api_keys.delete(k["id"], project_id=p.id)
    sa = client.admin.organization.projects.service_accounts.create(p.id, name="auditor")
    server.remember(sa.api_key.value)
    client.admin.organization.projects.update(p.id, name="audited-renamed")
    client.admin.organization.projects.archive(p.id)

    events = _recent(server, 7)
    types = [e["type"] for e in events]
    assert types == [
        "project.archived",
        "project.updated",
        "api_key.created",
        "service_account.created",
        "api_key.deleted",
        "api_key.created",
        "project.created",
    ], types

    stamps = [e["effective_at"] for e in events]
    assert stamps == sorted(stamps, reverse=True)
    for e in events:
        assert isinstance(e["id"], str) and e["id"]
        assert isinstance(e["effective_at"], int)
        assert e["project"]["id"] == p.id
        # The payload sits under the event type's key and names the object.
        assert isinstance(e[e["type"]], dict), e
        actor = e["actor"]
        assert actor["type"] == "api_key"
        assert actor["api_key"]["type"] == "user"
        assert actor["api_key"]["id"].startswith("key_")

    by_type = {}
    for e in reversed(events):
        by_type.setdefault(e["type"], []).append(e)
    assert by_type["project.created"][0]["project.created"]["id"] == p.id
    assert by_type["project.archived"][0]["project.archived"]["id"] == p.id
    assert by_type["api_key.created"][0]["api_key.created"]["id"] == k["id"]
    assert by_type["api_key.created"][0]["api_key.created"]["data"]["scopes"] == ["api.model.read"]
    assert by_type["api_key.deleted"][0]["api_key.deleted"]["id"] == k["id"]
    assert by_type["service_account.created"][0]["service_account.created"]["id"] == sa.id
    assert by_type["api_key.created"][1]["api_key.created"]["id"] == sa.api_key.id


def test_admin_key_events(server, client):
    created = client.admin.organization.admin_api_keys.create(name=uniq("audit-admin"))
    server.remember(created.value)
    client.admin.organization.admin_api_keys.delete(created.id)
    events = _recent(server, 2)
    assert [e["type"] for e in events] == ["api_key.deleted", "api_key.created"]
    assert events[0]["api_key.deleted"]["id"] == created.id
    assert events[1]["api_key.created"]["id"] == created.id


def test_no_event_contains_a_key_value(server, client, project):
    # Make sure every kind of key appears in the log at least once.
    server.create_admin_key()
    server.create_project_key(project["id"])
    server.create_service_account(project["id"])
    events = walk(server, "/audit_logs", limit=100)
    text = json.dumps(events)
    assert len(server.secrets) >= 4
    for value in server.secrets:
        for fragment in secret_fragments(value):
            assert fragment not in text, "a key value leaked into the audit log"


def test_sdk_lists_audit_logs_strictly(server, client):
    """Every event, including those written by `keyplane init`, validates in strict mode."""
    server.create_project()
    events = list(client.admin.organization.audit_logs.list(limit=100))
    assert events
    assert all(e.effective_at > 0 and e.id for e in events)
    assert events[0].type == "project.created"
