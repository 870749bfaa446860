"""People: organization users, invites (and the accept extension), project members, the first
owner's password, and role enforcement. The official SDK (strict) where it covers the operation,
raw HTTP for extensions and both query styles."""

from __future__ import annotations

import threading
import urllib.parse

import openai
import pytest

import kputil
from kputil import assert_error, assert_list_envelope, sdk_error, uniq
from peopleutil import (
    PASSWORD,
    InitRun,
    accept,
    invite,
    join,
    key_for,
    password_file,
    secrets_of,
    token_of,
    works,
)

# ---------------------------------------------------------------------------------------------
# Organization users
# ---------------------------------------------------------------------------------------------


def test_users_list_retrieve_and_email_filter(server, client):
    a = join(server, f"{uniq('ana')}@Example.com")
    b = join(server, role="owner")
    users = client.admin.organization.users

    everyone = list(users.list(limit=2))
    ids = [u.id for u in everyone]
    assert a["id"] in ids and b["id"] in ids
    assert len(ids) == len(set(ids)), "auto-pagination repeated a user"
    owner = next(u for u in everyone if u.email == kputil.OWNER_EMAIL)
    assert owner.role == "owner" and owner.object == "organization.user"

    # `emails[]=` (SDK) and `emails=` (plain HTTP), case-insensitive.
    page = users.list(emails=[a["email"].upper(), b["email"]])
    assert sorted(u.id for u in page.data) == sorted([a["id"], b["id"]])
    q = urllib.parse.urlencode([("emails", a["email"].lower()), ("emails", "nobody@example.com")])
    plain = assert_list_envelope(server.ok("GET", f"/users?{q}"))
    assert [u["id"] for u in plain] == [a["id"]]

    got = users.retrieve(a["id"])
    assert (got.id, got.email, got.role, got.name) == (a["id"], a["email"], "reader", "New Person")
    assert isinstance(got.added_at, int)
    assert_error(sdk_error(users.retrieve, "user-doesnotexist"), 404)


def test_user_role_changes_and_deletion(server, client):
    users = client.admin.organization.users
    u = join(server)
    updated = users.update(u["id"], role="owner")
    assert updated.role == "owner"
    assert users.retrieve(u["id"]).role == "owner"
    assert users.update(u["id"], role="reader").role == "reader"
    err = assert_error(sdk_error(users.update, u["id"], role="admin"), 400, param="role")
    assert "owner" in err["message"]
    deleted = users.delete(u["id"])
    assert (deleted.id, deleted.deleted, deleted.object) == (u["id"], True, "organization.user.deleted")
    assert_error(sdk_error(users.retrieve, u["id"]), 404)
    assert_error(sdk_error(users.delete, u["id"]), 404)
    assert u["id"] not in [x.id for x in users.list(limit=100)]


def test_the_last_owner_cannot_be_demoted_or_removed(fresh_server):
    srv = fresh_server()
    c = srv.client()
    me = next(u for u in c.admin.organization.users.list() if u.email == kputil.OWNER_EMAIL)
    err = assert_error(sdk_error(c.admin.organization.users.update, me.id, role="reader"), 400)
    assert "last" in err["message"]
    assert_error(sdk_error(c.admin.organization.users.delete, me.id), 400)
    assert c.admin.organization.users.retrieve(me.id).role == "owner"


# ---------------------------------------------------------------------------------------------
# Invites
# ---------------------------------------------------------------------------------------------


def test_invite_lifecycle_with_the_sdk(server, client, project):
    invites = client.admin.organization.invites
    email = f"{uniq('inv')}@example.com"
    created = invites.create(email=email, role="reader", projects=[{"id": project["id"], "role": "owner"}])
    assert created.object == "organization.invite" and created.status == "pending"
    assert created.email == email and created.role == "reader"
    assert [(p.id, p.role) for p in created.projects] == [(project["id"], "owner")]
    assert created.expires_at - created.created_at == 7 * 24 * 3600
    token = token_of(created)
    secrets_of(server).add(token)
    assert created.accept_url.startswith("http") and created.accept_url.endswith(f"/invite/{token}")

    # Only the create response carries the link.
    got = invites.retrieve(created.id)
    assert got.status == "pending" and "accept_url" not in (got.model_extra or {})
    listed = [i for i in invites.list(limit=100) if i.id == created.id]
    assert len(listed) == 1 and "accept_url" not in (listed[0].model_extra or {})
    assert token not in server.org("GET", "/invites?limit=100").text

    resp = accept(server, token, name="Invitee")
    assert resp.status == 200, resp
    user = resp.json()
    assert set(user) >= {"object", "id", "name", "email", "role", "added_at"}
    assert (user["email"], user["role"], user["name"]) == (email, "reader", "Invitee")
    assert invites.retrieve(created.id).status == "accepted"
    assert invites.retrieve(created.id).accepted_at is not None
    member = client.admin.organization.projects.users.retrieve(user["id"], project_id=project["id"])
    assert member.role == "owner"

    # Single use; an accepted invite cannot be deleted.
    assert_error(accept(server, token), 400, param="token", contains="already been accepted")
    assert_error(sdk_error(invites.delete, created.id), 400)


def test_invite_without_projects_and_withdrawal(server, client):
    invites = client.admin.organization.invites
    created = invite(server, f"{uniq('w')}@example.com", "owner")
    assert created["projects"] == []
    deleted = invites.delete(created["id"])
    assert (deleted.id, deleted.deleted, deleted.object) == (created["id"], True, "organization.invite.deleted")
    assert_error(sdk_error(invites.retrieve, created["id"]), 404)
    assert created["id"] not in [i.id for i in invites.list(limit=100)]
    assert_error(accept(server, token_of(created)), 404, contains="withdrawn")
    users = [u.email for u in client.admin.organization.users.list(limit=100)]
    assert created["email"] not in users


def test_invite_and_accept_reject_bad_input(server, client, project):
    invites = client.admin.organization.invites
    assert_error(sdk_error(invites.create, email="not-an-email", role="reader"), 400, param="email")
    assert_error(sdk_error(invites.create, email="x@example.com", role="admin"), 400, param="role")
    bad = [{"id": "proj_doesnotexist", "role": "member"}]
    assert_error(sdk_error(invites.create, email="x@example.com", role="reader", projects=bad), 400, param="projects")
    bad_role = [{"id": project["id"], "role": "reader"}]
    assert_error(
        server.org("POST", "/invites", json_body={"email": "x@example.com", "role": "reader", "projects": bad_role}),
        400,
        param="projects",
    )
    # Already a member.
    assert_error(sdk_error(invites.create, email=kputil.OWNER_EMAIL.upper(), role="reader"), 400, param="email")

    created = invite(server, f"{uniq('bad')}@example.com")
    token = token_of(created)
    assert_error(accept(server, token, password="short"), 400, param="password")
    assert_error(accept(server, token, name=None), 400, param="name")
    assert_error(accept(server, "kpinv_" + "x" * 43), 404)
    assert_error(accept(server, ""), 404)
    resp = server.http("POST", "/v1/invites/accept", body="{", headers={"Content-Type": "application/json"}, key=None)
    assert_error(resp, 400)
    # Nothing was used up by the failures.
    assert accept(server, token).status == 200


def test_concurrent_accepts_create_one_member(server, client):
    email = f"{uniq('race')}@example.com"
    token = token_of(invite(server, email))
    results: list[kputil.Response] = []
    lock = threading.Lock()

    def go(i: int) -> None:
        r = accept(server, token, name=f"Racer {i}")
        with lock:
            results.append(r)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in results) == [200] + [400] * 5, results
    found = client.admin.organization.users.list(emails=[email]).data
    assert len(found) == 1


def test_the_invite_route_is_public_but_the_rest_is_not(server):
    # No key needed for accept; a key is not a substitute for a token.
    assert_error(server.http("POST", "/v1/invites/accept", json_body={"token": "kpinv_x", "password": PASSWORD}, key=None), 404)
    assert_error(server.http("GET", "/v1/organization/invites", key=None), 401)
    assert_error(server.http("GET", "/v1/invites/accept", key=None), 405)


# ---------------------------------------------------------------------------------------------
# The first owner's password
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def init_runs(backend, workdir, request):
    runs: list[InitRun] = []

    def make(env: dict[str, str]) -> InitRun:
        run = InitRun(backend, workdir, env, f"init-{backend}-{len(runs)}-{request.node.originalname}")
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.close()


def test_owner_password_from_the_environment(init_runs, tmp_path):
    secret = "owner-password-" + uniq("pw")
    for env in (
        {"KEYPLANE_OWNER_PASSWORD": secret},
        {"KEYPLANE_OWNER_PASSWORD_FILE": password_file(tmp_path, secret)},
    ):
        run = init_runs(env)
        assert run.returncode == 0, run.stderr
        key = run.stdout.strip()
        assert run.stdout == key + "\n", "init must print the admin key alone on stdout"
        kputil.assert_key_value(key, "admin")
        assert "/setup/" not in run.stderr and "kpinv_" not in run.stderr
        assert secret not in run.stderr
        stored = run.stored_text()
        assert "$argon2id$" in stored
        assert secret not in stored


def test_owner_setup_link_sets_the_password_once(init_runs, mock):
    run = init_runs({"KEYPLANE_PUBLIC_URL": "https://keyplane.example.com/"})
    assert run.returncode == 0, run.stderr
    key = run.stdout.strip()
    assert run.stdout == key + "\n"
    links = [w for w in run.stderr.split() if "/setup/" in w]
    assert links and links[0].startswith("https://keyplane.example.com/setup/kpinv_"), run.stderr
    token = links[0].rsplit("/", 1)[1]
    assert "$argon2id$" not in run.stored_text()
    assert token not in run.stored_text(), "only the token's hash is stored"

    srv = run.start(mock)
    resp = accept(srv, token, name=None, password="the owner's own password")
    assert resp.status == 200, resp
    user = resp.json()
    assert (user["email"], user["role"]) == (kputil.OWNER_EMAIL, "owner")
    assert_error(accept(srv, token, name=None), 400, param="token")
    stored = run.stored_text()
    assert "$argon2id$" in stored and "the owner's own password" not in stored
    # The setup link is not an invite, and setting the password is audited.
    assert srv.ok("GET", "/invites")["data"] == []
    events = srv.ok("GET", "/audit_logs?event_types[]=user.updated")["data"]
    assert events[0]["actor"]["type"] == "session"
    assert events[0]["user.updated"]["id"] == user["id"]
    assert token not in str(srv.ok("GET", "/audit_logs?limit=100"))


# ---------------------------------------------------------------------------------------------
# Project users
# ---------------------------------------------------------------------------------------------


def test_project_users_with_the_sdk(server, client, project):
    pu = client.admin.organization.projects.users
    a = join(server)
    b = join(server)
    added = pu.create(project["id"], role="member", user_id=a["id"])
    assert (added.object, added.id, added.role, added.email) == ("organization.project.user", a["id"], "member", a["email"])
    by_email = pu.create(project["id"], role="owner", email=b["email"].upper())
    assert by_email.id == b["id"] and by_email.role == "owner"

    members = list(pu.list(project["id"], limit=1))
    assert {a["id"], b["id"]} <= {m.id for m in members}
    assert pu.retrieve(a["id"], project_id=project["id"]).role == "member"
    assert pu.update(a["id"], project_id=project["id"], role="owner").role == "owner"
    gone = pu.delete(a["id"], project_id=project["id"])
    assert (gone.id, gone.deleted, gone.object) == (a["id"], True, "organization.project.user.deleted")
    assert_error(sdk_error(pu.retrieve, a["id"], project_id=project["id"]), 404)
    assert_error(sdk_error(pu.delete, a["id"], project_id=project["id"]), 404)

    # Mistakes.
    assert_error(sdk_error(pu.create, project["id"], role="owner", user_id=b["id"]), 400)  # already in
    assert_error(sdk_error(pu.create, project["id"], role="admin", user_id=a["id"]), 400, param="role")
    assert_error(sdk_error(pu.create, project["id"], role="member", email="nobody@example.com"), 400, param="email")
    assert_error(sdk_error(pu.create, project["id"], role="member", user_id="user-nobody"), 404)
    assert_error(sdk_error(pu.create, project["id"], role="member"), 400)
    assert_error(sdk_error(pu.list, "proj_doesnotexist"), 404)


def test_project_users_of_an_archived_project_are_frozen(server, client):
    p = server.create_project()
    u = join(server, projects=[{"id": p["id"], "role": "member"}])
    client.admin.organization.projects.archive(p["id"])
    pu = client.admin.organization.projects.users
    assert pu.retrieve(u["id"], project_id=p["id"]).role == "member"
    assert_error(sdk_error(pu.delete, u["id"], project_id=p["id"]), 400)
    assert_error(sdk_error(pu.update, u["id"], project_id=p["id"], role="owner"), 400)


def test_inactive_owner_access_blocks_keys_at_once(server, client, project):
    u = join(server, projects=[{"id": project["id"], "role": "member"}])
    key = key_for(server, project["id"], u["id"])
    assert key["owner"]["user"]["id"] == u["id"] and key["owner_project_access"] == "active"
    value = key["value"]
    assert works(server, value)  # now cached
    keys = client.admin.organization.projects.api_keys

    client.admin.organization.projects.users.delete(u["id"], project_id=project["id"])
    assert not works(server, value), "a removed member's key must stop at once"
    assert keys.retrieve(key["id"], project_id=project["id"]).owner_project_access == "inactive"
    inactive = [k.id for k in keys.list(project["id"], owner_project_access="inactive")]
    assert key["id"] in inactive
    assert key["id"] not in [k.id for k in keys.list(project["id"])]

    client.admin.organization.projects.users.create(project["id"], role="member", user_id=u["id"])
    assert works(server, value), "adding them back restores the key"
    assert keys.retrieve(key["id"], project_id=project["id"]).owner_project_access == "active"

    client.admin.organization.users.delete(u["id"])
    assert not works(server, value), "a deleted user's key must stop at once"
    assert keys.retrieve(key["id"], project_id=project["id"]).owner_project_access == "inactive"


def test_keys_for_others_need_membership(server, project):
    outsider = join(server)
    resp = server.org("POST", f"/projects/{project['id']}/api_keys", json_body={"name": "k", "user_id": outsider["id"]})
    assert_error(resp, 400, param="user_id")
    resp = server.org("POST", f"/projects/{project['id']}/api_keys", json_body={"name": "k", "user_id": "user-nobody"})
    assert_error(resp, 404)


# ---------------------------------------------------------------------------------------------
# Roles
# ---------------------------------------------------------------------------------------------


def _mutations(c: openai.OpenAI, project_id: str, user_id: str, key_id: str):
    org = c.admin.organization
    return [
        ("create a project", lambda: org.projects.create(name="nope")),
        ("rename a project", lambda: org.projects.update(project_id, name="nope")),
        ("create an admin key", lambda: org.admin_api_keys.create(name="nope")),
        ("delete an admin key", lambda: org.admin_api_keys.delete(key_id)),
        ("invite", lambda: org.invites.create(email="nope@example.com", role="reader")),
        ("change a role", lambda: org.users.update(user_id, role="owner")),
        ("delete a user", lambda: org.users.delete(user_id)),
        ("add a project user", lambda: org.projects.users.create(project_id, role="member", user_id=user_id)),
        ("create a service account", lambda: org.projects.service_accounts.create(project_id, name="nope")),
    ]


def _assert_every_change_refused(
    srv: kputil.Server, key: str, project_id: str, user_id: str, key_id: str
) -> None:
    c = srv.client(key)
    for what, call in _mutations(c, project_id, user_id, key_id):
        err = assert_error(sdk_error(call), 401, code=None)
        assert "Missing scopes: api.management.write" in err["message"], what
    # Reader keys cannot create project keys either (Keyplane's create extension).
    resp = srv.org("POST", f"/projects/{project_id}/api_keys", key=key, json_body={"name": "nope"})
    assert_error(resp, 401, contains="Missing scopes")


def test_a_read_only_admin_key_reads_but_changes_nothing(server, client, project):
    ro = server.create_admin_key(scopes=["api.management.read"])
    c = server.client(ro["value"])
    someone = join(server)
    assert c.admin.organization.users.retrieve(someone["id"]).id == someone["id"]
    assert c.admin.organization.invites.list().data is not None
    assert c.admin.organization.projects.users.list(project["id"]).data is not None
    assert c.admin.organization.audit_logs.list(limit=1).data
    _assert_every_change_refused(server, ro["value"], project["id"], someone["id"], ro["id"])


def test_an_org_reader_reads_but_cannot_change_anything(fresh_server):
    srv = fresh_server()
    first = srv.client()
    org = first.admin.organization
    p = org.projects.create(name="p")
    spare = org.admin_api_keys.create(name="second key of the first owner")
    srv.remember(spare.value)
    me = next(u for u in org.users.list() if u.email == kputil.OWNER_EMAIL)
    second = join(srv, role="owner")
    # The first owner steps down: every admin key they own now acts as a reader, at once.
    assert org.users.update(me.id, role="reader").role == "reader"
    for key in (srv.admin_key, spare.value):
        c = srv.client(key)
        assert c.admin.organization.projects.retrieve(p.id).id == p.id
        assert c.admin.organization.users.retrieve(second["id"]).role == "owner"
        assert c.admin.organization.users.retrieve(me.id).role == "reader"
        _assert_every_change_refused(srv, key, p.id, second["id"], spare.id)
