"""Audit log: one event per mutation with the right actor and no secrets, every filter of
GET /v1/organization/audit_logs in both array styles, `after`/`before`, and retention."""

from __future__ import annotations

import json
import urllib.parse

import pytest

import kputil
from kputil import assert_error, assert_list_envelope, secret_fragments, uniq, walk
from peopleutil import accept, invite, join, secrets_of, token_of

# The event types Keyplane writes: every one of them is an OpenAI event name.
OPENAI_EVENT_TYPES = {
    "api_key.created",
    "api_key.updated",
    "api_key.deleted",
    "invite.sent",
    "invite.accepted",
    "invite.deleted",
    "organization.updated",
    "project.created",
    "project.updated",
    "project.archived",
    "rate_limit.updated",
    "rate_limit.deleted",
    "service_account.created",
    "service_account.updated",
    "service_account.deleted",
    "user.added",
    "user.updated",
    "user.deleted",
}


def _newest_id(server) -> str | None:
    return server.ok("GET", "/audit_logs?limit=1")["last_id"]


def _since(server, marker: str | None) -> list[dict]:
    """Events newer than `marker`, newest first."""
    out = []
    for e in assert_list_envelope(server.ok("GET", "/audit_logs?limit=100")):
        if e["id"] == marker:
            return out
        out.append(e)
    assert marker is None, "more than 100 events since the marker"
    return out


def _list(server, query: str) -> list[dict]:
    body = server.ok("GET", f"/audit_logs?limit=100&{query}")
    assert body["has_more"] is False, body
    return assert_list_envelope(body)


def _types(events) -> list[str]:
    return [e["type"] if isinstance(e, dict) else e.type for e in events]


def _owner(client):
    return next(u for u in client.admin.organization.users.list(limit=100) if u.email == kputil.OWNER_EMAIL)


def test_each_mutation_writes_exactly_one_event_with_its_actor(server, client):
    org = client.admin.organization
    owner = _owner(client)
    state: dict = {}

    def p_create():
        state["p"] = org.projects.create(name=uniq("audited")).id
        return state["p"]

    def key_create():
        k = server.create_project_key(state["p"])
        state["k"] = k["id"]
        return k["id"]

    def key_update():
        server.ok("POST", f"/projects/{state['p']}/api_keys/{state['k']}", json_body={"name": "renamed"})
        return state["k"]

    def key_delete():
        org.projects.api_keys.delete(state["k"], project_id=state["p"])
        return state["k"]

    def admin_create():
        a = org.admin_api_keys.create(name=uniq("audit-admin"))
        server.remember(a.value)
        state["a"] = a.id
        return a.id

    def admin_delete():
        org.admin_api_keys.delete(state["a"])
        return state["a"]

    def sa_create():
        sa = org.projects.service_accounts.create(state["p"], name="bot", create_service_account_only=True)
        state["sa"] = sa.id
        return sa.id

    def sa_key():
        k = org.projects.service_accounts.api_keys.create(state["sa"], project_id=state["p"], name="bot key")
        server.remember(k.value)
        return k.id

    def sa_update():
        org.projects.service_accounts.update(state["sa"], project_id=state["p"], role="owner")
        return state["sa"]

    def sa_delete():
        org.projects.service_accounts.delete(state["sa"], project_id=state["p"])
        return state["sa"]

    def inv_send():
        i = invite(server, f"{uniq('audit')}@example.com", "reader")
        state["inv"] = i
        return i["id"]

    def inv_accept():
        resp = accept(server, token_of(state["inv"]))
        assert resp.status == 200, resp
        state["u"] = resp.json()["id"]
        return state["inv"]["id"]

    def inv_delete():
        i = org.invites.create(email=f"{uniq('gone')}@example.com", role="reader")
        secrets_of(server).add(token_of(i))
        state["inv_marker"] = _newest_id(server)
        org.invites.delete(i.id)
        return i.id

    def pu_add():
        org.projects.users.create(state["p"], role="member", user_id=state["u"])
        return state["u"]

    def pu_update():
        org.projects.users.update(state["u"], project_id=state["p"], role="owner")
        return state["u"]

    def pu_remove():
        org.projects.users.delete(state["u"], project_id=state["p"])
        return state["u"]

    def user_update():
        org.users.update(state["u"], role="owner")
        return state["u"]

    def user_delete():
        org.users.delete(state["u"])
        return state["u"]

    def rate_limit():
        rl = org.projects.rate_limits.list_rate_limits(state["p"], limit=1).data[0]
        org.projects.rate_limits.update_rate_limit(rl.id, project_id=state["p"], max_requests_per_1_minute=7)
        return rl.id

    def p_update():
        org.projects.update(state["p"], name="renamed")
        return state["p"]

    def p_archive():
        org.projects.archive(state["p"])
        return state["p"]

    steps = [
        (p_create, "project.created", True),
        (key_create, "api_key.created", True),
        (key_update, "api_key.updated", True),
        (key_delete, "api_key.deleted", True),
        (admin_create, "api_key.created", False),
        (admin_delete, "api_key.deleted", False),
        (sa_create, "service_account.created", True),
        (sa_key, "api_key.created", True),
        (sa_update, "service_account.updated", True),
        (sa_delete, "service_account.deleted", True),
        (inv_send, "invite.sent", False),
        (inv_accept, "invite.accepted", False),
        (inv_delete, "invite.deleted", False),
        (pu_add, "user.added", True),
        (pu_update, "user.updated", True),
        (pu_remove, "user.deleted", True),
        (user_update, "user.updated", False),
        (rate_limit, "rate_limit.updated", True),
        (p_update, "project.updated", True),
        (p_archive, "project.archived", True),
        (user_delete, "user.deleted", False),
    ]
    key_ids = set()
    for step, expected, in_project in steps:
        marker = _newest_id(server)
        resource = step()
        if step is inv_delete:
            marker = state.pop("inv_marker")
        new = _since(server, marker)
        assert _types(new) == [expected], f"{step.__name__}: {_types(new)}"
        e = new[0]
        assert e[expected]["id"] == resource, (step.__name__, e)
        if in_project:
            assert e["project"]["id"] == state["p"], (step.__name__, e)
        else:
            assert "project" not in e, (step.__name__, e)
        actor = e["actor"]
        if expected == "invite.accepted":
            # The invitee accepted: a session of the new user, not the admin key.
            assert actor["type"] == "session", e
            assert actor["session"]["user"] == {"id": state["u"], "email": state["inv"]["email"]}
        else:
            assert actor["type"] == "api_key", e
            assert actor["api_key"]["type"] == "user"
            assert actor["api_key"]["user"] == {"id": owner.id, "email": kputil.OWNER_EMAIL}
            key_ids.add(actor["api_key"]["id"])
    assert len(key_ids) == 1 and next(iter(key_ids)).startswith("key_")


@pytest.fixture
def scene(server, client):
    """Two new projects, a key, an invite accepted by a new user, a few changes."""
    org = client.admin.organization
    p1 = org.projects.create(name=uniq("f1")).id
    p2 = org.projects.create(name=uniq("f2")).id
    k = server.create_project_key(p1)
    org.projects.api_keys.delete(k["id"], project_id=p1)
    org.projects.update(p2, name=uniq("f2-renamed"))
    email = f"{uniq('Actor')}@Example.com"
    inv = invite(server, email, "reader", [{"id": p1, "role": "member"}])
    resp = accept(server, token_of(inv))
    assert resp.status == 200, resp
    user = resp.json()
    events = _list(server, urllib.parse.urlencode([("project_ids", p1), ("project_ids", p2)]))
    return {
        "p1": p1,
        "p2": p2,
        "key": k["id"],
        "invite": inv["id"],
        "user": user,
        "owner": _owner(client),
        "times": sorted(e["effective_at"] for e in events),
    }


def test_every_filter_in_both_array_styles(server, client, scene):
    logs = client.admin.organization.audit_logs
    p1, p2 = scene["p1"], scene["p2"]
    both = {"project_ids": [p1, p2]}

    def sdk(**kw) -> list[str]:
        return _types(logs.list(limit=100, **kw).data)

    def raw(pairs) -> list[str]:
        return _types(_list(server, urllib.parse.urlencode(pairs)))

    def styles(name: str, values: list[str], extra=()) -> list[str]:
        """The same filter sent as `name[]=` (the SDK) and `name=` (plain HTTP)."""
        brackets = sdk(**{name: values}, **{k: v for k, v in extra})
        plain = raw([(name, v) for v in values] + [(k, x) for k, vs in extra for x in vs])
        assert brackets == plain, (name, brackets, plain)
        return brackets

    assert styles("project_ids", [p1]) == ["api_key.deleted", "api_key.created", "project.created"]
    assert styles("project_ids", [p2]) == ["project.updated", "project.created"]
    assert len(styles("project_ids", [p1, p2])) == 5

    in_scene = [("project_ids", [p1, p2])]
    assert styles("event_types", ["project.created"], in_scene) == ["project.created", "project.created"]
    assert styles("event_types", ["api_key.created", "project.updated"], in_scene) == [
        "project.updated",
        "api_key.created",
    ]

    # Actor ids: the acting user, or the API key they used.
    owner_events = styles("actor_ids", [scene["owner"].id], in_scene)
    assert len(owner_events) == 5
    key_id = _list(server, f"project_ids={p1}")[0]["actor"]["api_key"]["id"]
    assert styles("actor_ids", [key_id], in_scene) == owner_events
    uid = scene["user"]["id"]
    assert styles("actor_ids", [uid]) == ["invite.accepted"]
    assert styles("actor_emails", [scene["user"]["email"].upper()]) == ["invite.accepted"]
    assert styles("actor_emails", [kputil.OWNER_EMAIL], in_scene) == owner_events
    assert styles("actor_emails", ["nobody@example.com"]) == []

    assert styles("resource_ids", [scene["key"]]) == ["api_key.deleted", "api_key.created"]
    assert styles("resource_ids", [scene["invite"]]) == ["invite.accepted", "invite.sent"]
    assert styles("resource_ids", [p1, p2], [("event_types", ["project.created"])]) == [
        "project.created",
        "project.created",
    ]

    # effective_at: SDK `effective_at[gte]=…` and the same by hand.
    lo, hi = scene["times"][0], scene["times"][-1]
    assert len(sdk(effective_at={"gte": lo, "lte": hi}, **both)) == 5
    assert sdk(effective_at={"gt": hi}, **both) == []
    assert sdk(effective_at={"lt": lo}, **both) == []
    assert len(sdk(effective_at={"gt": lo - 1, "lt": hi + 1}, **both)) == 5
    q = urllib.parse.urlencode([("effective_at[gte]", lo), ("effective_at[lte]", hi), ("project_ids", p1)])
    assert len(_list(server, q)) == 3
    now = kputil.now()
    recent = _list(server, f"effective_at%5Bgte%5D={now - 3600}&effective_at%5Blte%5D={now + 5}")
    assert all(now - 3600 <= e["effective_at"] <= now + 5 for e in recent)

    # Combined filters are ANDed.
    assert sdk(project_ids=[p1], event_types=["api_key.deleted"], actor_emails=[kputil.OWNER_EMAIL]) == [
        "api_key.deleted"
    ]
    assert sdk(project_ids=[p2], resource_ids=[scene["key"]]) == []
    # No tenant-scoped events in Keyplane.
    assert sdk(tenant_only=True) == []


def test_pages_newest_first_with_after_and_before(server, client, scene):
    logs = client.admin.organization.audit_logs
    both = {"project_ids": [scene["p1"], scene["p2"]]}
    full = logs.list(limit=100, **both).data
    assert len(full) == 5
    order = [(e.effective_at, i) for i, e in enumerate(full)]
    assert [t for t, _ in order] == sorted((t for t, _ in order), reverse=True)
    # The SDK follows `last_id` as `after`, one event per page.
    walked = [e.id for e in logs.list(limit=1, **both)]
    assert walked == [e.id for e in full]

    q = f"project_ids={scene['p1']}&project_ids={scene['p2']}"
    page1 = server.ok("GET", f"/audit_logs?limit=2&{q}")
    assert page1["has_more"] is True
    page2 = server.ok("GET", f"/audit_logs?limit=2&{q}&after={page1['last_id']}")
    assert [e["id"] for e in page2["data"]] == [e.id for e in full[2:4]]
    back = server.ok("GET", f"/audit_logs?limit=2&{q}&before={page2['first_id']}")
    assert [e["id"] for e in back["data"]] == [e.id for e in full[:2]]
    assert back["has_more"] is False
    back1 = server.ok("GET", f"/audit_logs?limit=1&{q}&before={page2['first_id']}")
    assert [e["id"] for e in back1["data"]] == [full[1].id] and back1["has_more"] is True
    tail = server.ok("GET", f"/audit_logs?limit=2&{q}&after={full[-1].id}")
    assert tail["data"] == [] and tail["has_more"] is False


@pytest.mark.parametrize(
    "query,param",
    [
        ("effective_at[gt]=yesterday", "effective_at[gt]"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("after=audit_log-doesnotexist", "after"),
        ("before=audit_log-doesnotexist", "before"),
        ("after=x&before=y", "before"),
        ("after=bad%27quote", "after"),
        ("tenant_only=maybe", "tenant_only"),
        ("&".join(f"event_types=t{i}" for i in range(101)), "event_types"),
    ],
)
def test_bad_filters_are_400(server, query, param):
    assert_error(server.org("GET", f"/audit_logs?{query}"), 400, param=param)


def test_no_audit_event_contains_a_secret(server, client, scene):
    # Make sure every kind of secret exists on this server: keys of each kind, invite tokens,
    # passwords (scene and the people tests add the latter).
    server.create_admin_key()
    server.create_service_account(scene["p2"])
    join(server)
    events = walk(server, "/audit_logs", limit=100)
    text = json.dumps(events)
    key_values = {v for v in server.secrets if v.startswith(tuple(kputil.KEY_PREFIXES.values()))}
    assert len(key_values) >= 3
    for value in key_values:
        for fragment in secret_fragments(value):
            assert fragment not in text, "a key value leaked into the audit log"
    people = secrets_of(server)
    assert len(people) >= 3, people
    for secret in people:
        assert secret not in text, "a token or password leaked into the audit log"
    assert "kpinv_" not in text
    assert "$argon2" not in text
    # Every event type is one of OpenAI's names, so the strict SDK accepts the whole log.
    seen = {e["type"] for e in events}
    assert seen <= OPENAI_EVENT_TYPES, seen - OPENAI_EVENT_TYPES
    strict = list(client.admin.organization.audit_logs.list(limit=100))
    assert len(strict) >= len(events)


def test_retention_prunes_old_events(fresh_server):
    srv = fresh_server(start=False, config="audit_retention_days = 30\n")
    old_at = kputil.now() - 40 * 86400
    ins = (
        "INSERT INTO audit_events (id, event_type, effective_at, actor, details) "
        f"VALUES ('audit_log-ancient', 'project.updated', {old_at}, '{{}}', '{{}}')"
    )
    if srv.backend == "sqlite":
        import sqlite3

        with sqlite3.connect(srv.db.path) as conn:
            conn.execute(ins)
    else:
        with kputil._pg_connect(srv.db.url) as conn:
            conn.execute(ins)
    srv.start()

    def pruned() -> bool:
        ids = [e["id"] for e in srv.ok("GET", "/audit_logs?limit=100")["data"]]
        return "audit_log-ancient" not in ids

    assert kputil.poll(pruned, timeout=10), "the event past retention was not pruned"
    # Recent events stay (init wrote two).
    assert len(srv.ok("GET", "/audit_logs")["data"]) >= 2
    # No API deletes or changes an event.
    some = srv.ok("GET", "/audit_logs?limit=1")["data"][0]["id"]
    for method in ("DELETE", "POST", "PUT", "PATCH"):
        resp = srv.org(method, f"/audit_logs/{some}", json_body={})
        assert resp.status in (404, 405), resp
        assert srv.org(method, "/audit_logs", json_body={}).status == 405
