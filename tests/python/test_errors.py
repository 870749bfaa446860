"""Authentication failures, request errors and hostile input (raw HTTP, exact envelopes)."""

from __future__ import annotations

import json

import openai
import pytest

from kputil import (
    KEY_PREFIXES,
    assert_error,
    forge_key,
    key_secret,
    uniq,
)

# ------------------------------------------------------------------ authentication


def test_missing_authorization(server):
    resp = server.org("GET", "/projects", key=None)
    assert_error(resp, 401, code="invalid_api_key")


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc", "bearer"],
    ids=["basic", "bearer-no-space", "bearer-empty", "token", "lower-bare"],
)
def test_malformed_authorization(server, header):
    resp = server.org("GET", "/projects", key=None, headers={"Authorization": header})
    assert_error(resp, 401, code="invalid_api_key")


def test_lowercase_bearer_scheme_is_accepted(server):
    resp = server.org(
        "GET", "/projects", key=None, headers={"Authorization": f"bearer {server.admin_key}"}
    )
    assert resp.status == 200, resp


@pytest.mark.parametrize(
    "make",
    [
        lambda k: "garbage",
        lambda k: "sk-admin-" + "x" * 10,
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),  # wrong checksum
        lambda k: k[:20] + ("A" if k[20] != "A" else "B") + k[21:],  # secret typo
        lambda k: k + "x",
        lambda k: k.replace("sk-admin-", "sk-proj-"),
        lambda k: " " * 3 + k[:-2],
        lambda k: "sk-admin-" + "é" * 58,
    ],
    ids=["garbage", "short", "checksum", "typo", "long", "prefix", "truncated", "unicode"],
)
def test_bad_keys_are_rejected_without_echoing_them(server, make):
    bad = make(server.admin_key)
    resp = server.org("GET", "/projects", key=bad)
    err = assert_error(resp, 401, code="invalid_api_key")
    body = resp.text
    if len(bad) >= 16:
        assert bad not in body
        assert bad.strip() not in body
    assert key_secret(server.admin_key) not in body
    assert server.admin_key not in body
    assert err["message"]


def test_forged_keys_with_valid_checksums(server, project):
    """Keys that pass the checksum but are unknown, or known ids with a wrong secret."""
    admin_public_id = server.admin_key[len("sk-admin-") :][:16]
    forged = [
        forge_key("sk-admin-", "Z" * 16, "q" * 36),  # unknown id
        forge_key("sk-admin-", admin_public_id, "q" * 36),  # known id, wrong secret
    ]
    pkey = server.create_project_key(project["id"])
    pk_public_id = pkey["value"][len("sk-proj-") :][:16]
    forged.append(forge_key("sk-admin-", pk_public_id, key_secret(pkey["value"])))  # kind swap
    for bad in forged:
        resp = server.org("GET", "/projects", key=bad)
        assert_error(resp, 401, code="invalid_api_key", excludes=(bad,))


def test_project_key_on_admin_route(server, project):
    k = server.create_project_key(project["id"])
    resp = server.org("GET", "/projects", key=k["value"])
    err = assert_error(resp, 401, excludes=(k["value"],))
    assert "admin key" in err["message"]
    # Through the SDK: AuthenticationError.
    c = server.client(key=k["value"])
    with pytest.raises(openai.AuthenticationError) as exc:
        c.admin.organization.projects.list()
    assert "admin key" in exc.value.message


def test_admin_key_on_non_admin_route(server):
    resp = server.http("GET", "/v1/models")
    assert_error(resp, 401)


# ------------------------------------------------------------------ request errors


def test_unknown_project_is_404(server):
    for path in (
        "/projects/proj_doesnotexist",
        "/projects/proj_doesnotexist/api_keys",
        "/projects/proj_doesnotexist/service_accounts",
        "/projects/proj_doesnotexist/api_keys/key_0000000000000000",
        "/projects/proj_doesnotexist/service_accounts/svc_acct_x",
    ):
        assert_error(server.org("GET", path), 404)
    assert_error(server.org("POST", "/projects/proj_doesnotexist/archive"), 404)


def test_malformed_json(server):
    resp = server.org(
        "POST", "/projects", body='{"name": ', headers={"Content-Type": "application/json"}
    )
    assert_error(resp, 400)


@pytest.mark.parametrize("body", ["[]", "null", '"name"', "42", "{'name': 'x'}"])
def test_non_object_json(server, body):
    resp = server.org(
        "POST", "/projects", body=body, headers={"Content-Type": "application/json"}
    )
    assert_error(resp, 400)


def test_wrong_type(server):
    resp = server.org("POST", "/projects", json_body={"name": 5})
    assert_error(resp, 400, param="name")
    resp = server.org("POST", "/admin_api_keys", json_body={"name": "x", "expires_in_seconds": "soon"})
    assert_error(resp, 400, param="expires_in_seconds")


@pytest.mark.parametrize(
    "path",
    ["/projects", "/admin_api_keys", "/projects/{pid}/service_accounts", "/projects/{pid}/api_keys"],
)
def test_missing_required_field_is_400(server, project, path):
    resp = server.org("POST", path.format(pid=project["id"]), json_body={})
    assert_error(resp, 400, param="name")


def test_missing_or_wrong_content_type(server):
    resp = server.org("POST", "/projects", body=json.dumps({"name": "x"}))
    err = assert_error(resp, resp.status)
    assert resp.status in (400, 415), resp
    assert err
    resp = server.org(
        "POST", "/projects", body=json.dumps({"name": "x"}), headers={"Content-Type": "text/plain"}
    )
    assert resp.status in (400, 415), resp
    assert_error(resp, resp.status)


def test_oversized_body_is_413(server):
    body = json.dumps({"name": "a" * (2 * 1024 * 1024)})
    resp = server.org("POST", "/projects", body=body, headers={"Content-Type": "application/json"})
    assert_error(resp, 413)
    # The server is fine afterwards.
    assert server.org("GET", "/projects?limit=1").status == 200


def test_unknown_routes_are_404(server):
    assert_error(server.org("GET", "/nope"), 404)
    assert_error(server.org("GET", "/projects/proj_x/nope"), 404)
    assert_error(server.http("GET", "/nope", key=None), 404)
    assert_error(server.http("GET", "/v2/organization/projects"), 404)


@pytest.mark.parametrize(
    "method,path",
    [
        ("PUT", "/projects"),
        ("PATCH", "/projects"),
        ("DELETE", "/projects"),
        ("DELETE", "/projects/{pid}"),
        ("PUT", "/projects/{pid}"),
        ("GET", "/projects/{pid}/archive"),
        ("PUT", "/admin_api_keys"),
        ("POST", "/audit_logs"),
    ],
)
def test_wrong_method_is_405(server, project, method, path):
    resp = server.org(method, path.format(pid=project["id"]))
    assert_error(resp, 405)


# ------------------------------------------------------------------ hostile input

HOSTILE_PATHS = [
    "/projects/proj_'",
    "/projects/proj_%27%20OR%201%3D1--",
    "/projects/proj_%00",
    "/projects/%00",
    "/projects/..%2F..%2Fadmin_api_keys",
    "/projects/../admin_api_keys",
    "/projects/proj_" + "a" * 5000,
    "/projects/proj_%E2%80%AE",
    "/projects/proj_%F0%9F%98%80",
    "/projects/%25",
    "/projects/proj_x%2Fapi_keys",
    "/admin_api_keys/key_%27%22%3C%3E",
    "/admin_api_keys/" + "k" * 5000,
    "/admin_api_keys/key_%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00",
    "/projects/proj_x/api_keys/key_%00",
    "/projects/proj_x/service_accounts/svc_acct_%0A",
    "/projects/{pid}/api_keys/..%2F..%2F",
    "/projects/{pid}/service_accounts/svc_acct_'%3B--",
    "/projects?include_archived=%00",
    "/projects?limit=%00",
    "/projects?after=%FF%FE",
    "/projects?limit=1&limit=2",
    "/projects?after[]=x",
    "/audit_logs?after=%E2%80%AE",
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_hostile_ids_never_5xx(server, project, method, path):
    path = path.format(pid=project["id"])
    kw = {"json_body": {"name": "x"}} if method == "POST" else {}
    resp = server.org(method, path, **kw)
    assert resp.status < 500, f"{method} {path[:120]}: {resp!r}"
    if resp.status >= 400:
        assert_error(resp, resp.status)


@pytest.mark.parametrize("path", ["/projects/%FF", "/projects/proj_%C3%28", "/admin_api_keys/%80"])
def test_invalid_utf8_in_path(server, path):
    resp = server.org("GET", path)
    assert resp.status in (400, 404), resp
    assert_error(resp, resp.status)


@pytest.mark.parametrize(
    "bad_id",
    ["'", "../admin_api_keys", "proj_\u0000", "a b/c", "x" * 3000, "proj_😀", "%2e%2e"],
    ids=["quote", "dotdot", "nul", "slash", "long", "emoji", "encoded-dots"],
)
def test_hostile_ids_through_the_sdk(client, bad_id):
    with pytest.raises(openai.NotFoundError):
        client.admin.organization.projects.retrieve(bad_id)
    with pytest.raises(openai.NotFoundError):
        client.admin.organization.admin_api_keys.retrieve(bad_id)


def test_hostile_names_for_keys_and_service_accounts(server, client, project):
    name = "<script>alert(1)</script> 'x' \"y\" ✓ 🚀"
    k = server.create_project_key(project["id"], name=name)
    assert k["name"] == name
    assert client.admin.organization.projects.api_keys.retrieve(
        k["id"], project_id=project["id"]
    ).name == name
    sa = client.admin.organization.projects.service_accounts.create(project["id"], name=name)
    server.remember(sa.api_key.value)
    assert sa.name == name
    assert client.admin.organization.projects.service_accounts.retrieve(
        sa.id, project_id=project["id"]
    ).name == name
    a = server.create_admin_key(name=name)
    assert client.admin.organization.admin_api_keys.retrieve(a["id"]).name == name


def test_huge_json_values_within_limit(server):
    # Deeply nested JSON and long unknown fields must not crash the server.
    nested = '{"name": "deep", "x": ' + "[" * 5000 + "]" * 5000 + "}"
    resp = server.org("POST", "/projects", body=nested, headers={"Content-Type": "application/json"})
    assert resp.status < 500, resp
    resp = server.org("POST", "/projects", json_body={"name": uniq("big"), "extra": "z" * 500_000})
    assert resp.status < 500, resp


def test_error_content_type_and_no_secret_in_errors(server):
    for kind, prefix in KEY_PREFIXES.items():
        fake = forge_key(prefix, "A" * 16, "b" * 36)
        resp = server.org("GET", "/projects", key=fake)
        assert_error(resp, 401, code="invalid_api_key", excludes=(fake, "b" * 36))
