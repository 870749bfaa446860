"""Who may call the gateway: key kinds, revocation on the very next request, scopes and
project model permissions."""

from __future__ import annotations

import json
import time

import openai
import pytest

from kputil import assert_error, error_of, now, sdk_error, uniq

HI = [{"role": "user", "content": "hi"}]


def _chat(c: openai.OpenAI, model: str = "gpt-4o-mini", **kw):
    return c.chat.completions.create(model=model, messages=HI, **kw)


def _assert_dead(server, c: openai.OpenAI, value: str) -> None:
    """The key is refused with 401 invalid_api_key, on chat (with the client that used it
    before) and on a read route (a new client: see test_early_refusal_keeps_the_connection_usable
    for why a connection is not reused after an early refusal)."""
    with pytest.raises(openai.AuthenticationError) as exc:
        _chat(c)
    assert_error(error_of(exc.value), 401, code="invalid_api_key", excludes=(value,))
    with pytest.raises(openai.AuthenticationError):
        server.gateway(value).models.list()


# ------------------------------------------------------------------ revocation


def test_deleted_project_key_fails_at_once(server, client, project):
    k = server.create_project_key(project["id"])
    other = server.create_project_key(project["id"])
    c = server.gateway(k["value"])
    assert _chat(c).choices
    client.admin.organization.projects.api_keys.delete(k["id"], project_id=project["id"])
    _assert_dead(server, c, k["value"])
    # Only that key.
    assert _chat(server.gateway(other["value"])).choices


def test_deleted_service_account_key_fails_at_once(server, client, project):
    sas = client.admin.organization.projects.service_accounts
    sa = sas.create(project["id"], name=uniq("bot"))
    value = server.remember(sa.api_key.value)
    assert value.startswith("sk-svcacct-")
    c = server.gateway(value)
    assert _chat(c).choices
    assert c.embeddings.create(model="text-embedding-3-small", input="x").data
    sas.delete(sa.id, project_id=project["id"])
    _assert_dead(server, c, value)


def test_deleted_service_account_api_key_fails_at_once(server, client, project):
    sa = client.admin.organization.projects.service_accounts.create(
        project["id"], name=uniq("bot")
    )
    value = server.remember(sa.api_key.value)
    c = server.gateway(value)
    assert _chat(c).choices
    client.admin.organization.projects.api_keys.delete(sa.api_key.id, project_id=project["id"])
    _assert_dead(server, c, value)


def test_archived_project_keys_fail_at_once(server, client):
    p = server.create_project()
    k = server.create_project_key(p["id"])
    sa = server.create_service_account(p["id"])
    clients = [
        (server.gateway(k["value"]), k["value"]),
        (server.gateway(sa["api_key"]["value"]), sa["api_key"]["value"]),
    ]
    for c, _ in clients:
        assert _chat(c).choices
    client.admin.organization.projects.archive(p["id"])
    for c, value in clients:
        _assert_dead(server, c, value)


def test_expired_key_fails(server, project):
    k = server.create_project_key(project["id"], expires_in_seconds=2)
    assert isinstance(k["expires_at"], int)
    c = server.gateway(k["value"])
    assert _chat(c).choices
    while now() <= k["expires_at"]:
        time.sleep(0.1)
    _assert_dead(server, c, k["value"])


def test_malformed_and_unknown_keys(server, project):
    k = server.create_project_key(project["id"])
    for bad in (k["value"][:-1] + ("A" if k["value"][-1] != "A" else "B"), "sk-proj-short", "x"):
        resp = sdk_error(_chat, server.gateway(bad))
        assert_error(resp, 401, code="invalid_api_key", excludes=(bad,))
    resp = server.http("POST", "/v1/chat/completions", key=None, json_body={"model": "gpt-4o"})
    assert_error(resp, 401, code="invalid_api_key")


# ------------------------------------------------------------------ key kinds


def test_admin_key_is_refused_on_the_gateway(server):
    marker = uniq("mark")
    c = server.gateway(server.admin_key)
    with pytest.raises(openai.AuthenticationError) as exc:
        _chat(c, extra_headers={"x-kp-test": marker})
    err = assert_error(error_of(exc.value), 401, excludes=(server.admin_key,))
    assert "project key" in err["message"] and "sk-proj-" in err["message"], err
    assert "admin key" in err["message"], err
    with pytest.raises(openai.AuthenticationError):
        server.gateway(server.admin_key).models.list()
    assert server.mock.requests_with(marker) == []


def test_project_and_service_account_keys_are_refused_on_admin_routes(server, project):
    k = server.create_project_key(project["id"])
    sa = server.create_service_account(project["id"])
    for value in (k["value"], sa["api_key"]["value"]):
        with pytest.raises(openai.AuthenticationError) as exc:
            server.client(key=value).admin.organization.projects.list()
        err = assert_error(error_of(exc.value), 401, excludes=(value,))
        assert "admin key" in err["message"] and "sk-admin-" in err["message"], err
        resp = server.http("GET", "/v1/organization/usage/completions?start_time=0", key=value)
        assert_error(resp, 401)


# ------------------------------------------------------------------ scopes


def test_read_only_model_scope(server, project):
    marker = uniq("mark")
    k = server.create_project_key(project["id"], scopes=["api.model.read"])
    c = server.gateway(k["value"])
    assert [m.id for m in c.models.list()]
    assert c.models.retrieve("gpt-4o").id == "gpt-4o"
    with pytest.raises(openai.AuthenticationError) as exc:
        _chat(c, extra_headers={"x-kp-test": marker})
    err = assert_error(error_of(exc.value), 401)
    assert "model.request" in err["message"], err
    assert "api.model.read" in err["message"], err
    with pytest.raises(openai.AuthenticationError):
        server.gateway(k["value"]).embeddings.create(model="text-embedding-3-small", input="x")
    assert server.mock.requests_with(marker) == []


def test_write_scope_implies_read(server, project):
    k = server.create_project_key(project["id"], scopes=["api.responses.write"])
    c = server.gateway(k["value"])
    raw = c.responses.with_raw_response.retrieve("resp_abc")
    assert raw.status_code == 200
    assert raw.http_response.json()["path"] == "/v1/responses/resp_abc"
    assert c.responses.create(model="gpt-4o", input="hi").output_text
    # Nothing else.
    resp = sdk_error(c.models.list)
    err = assert_error(resp, 401)
    assert "api.model.read" in err["message"] and "api.responses.write" in err["message"], err
    resp = sdk_error(_chat, c)
    assert "model.request" in assert_error(resp, 401)["message"]


def test_read_scope_does_not_imply_write(server, project):
    k = server.create_project_key(project["id"], scopes=["api.responses.read"])
    c = server.gateway(k["value"])
    assert c.responses.with_raw_response.retrieve("resp_abc").status_code == 200
    resp = sdk_error(c.responses.create, model="gpt-4o", input="hi")
    err = assert_error(resp, 401)
    assert "api.responses.write" in err["message"] and "api.responses.read" in err["message"]


def test_scopes_per_resource(server, project):
    k = server.create_project_key(
        project["id"], scopes=["model.request", "api.files.read", "api.batch.write"]
    )
    c = server.gateway(k["value"])
    assert _chat(c).choices
    assert c.files.with_raw_response.list().status_code == 200
    assert server.http("GET", "/v1/batches", key=k["value"]).status == 200
    assert server.http("POST", "/v1/batches", key=k["value"], json_body={}).status == 200
    resp = server.http("POST", "/v1/files", key=k["value"], json_body={})
    assert "api.files.write" in assert_error(resp, 401)["message"]
    resp = server.http("GET", "/v1/assistants", key=k["value"])
    assert "api.assistants.read" in assert_error(resp, 401)["message"]


# ------------------------------------------------------------------ model permissions


def test_model_permissions_allow_list(server, client, project):
    k = server.create_project_key(project["id"])
    c = server.gateway(k["value"])
    perms = client.admin.organization.projects.model_permissions
    got = perms.update(project["id"], mode="allow_list", model_ids=["gpt-4o-mini"])
    assert (got.mode, got.api_model_ids) == ("allow_list", ["gpt-4o-mini"])
    assert perms.retrieve(project["id"]).mode == "allow_list"

    marker = uniq("mark")
    with pytest.raises(openai.PermissionDeniedError) as exc:
        _chat(c, "gpt-4o", extra_headers={"x-kp-test": marker})
    err = assert_error(error_of(exc.value), 403, code="model_not_allowed")
    assert "gpt-4o" in err["message"], err
    assert server.mock.requests_with(marker) == []
    assert _chat(c, "gpt-4o-mini").model == "gpt-4o-mini"
    assert _chat(c, "gpt-4o-mini-2024-07-18").model == "gpt-4o-mini-2024-07-18"
    resp = sdk_error(c.embeddings.create, model="text-embedding-3-small", input="x")
    assert_error(resp, 403, code="model_not_allowed")
    resp = sdk_error(c.responses.create, model="gpt-4.1", input="x")
    assert_error(resp, 403, code="model_not_allowed")
    # Routes that name no model are not affected.
    assert c.models.list().data

    # Deleting the list restores access.
    perms.delete(project["id"])
    assert _chat(c, "gpt-4o").model == "gpt-4o"
    assert c.embeddings.create(model="text-embedding-3-small", input="x").data


def test_model_permissions_deny_list(server, client, project):
    k = server.create_project_key(project["id"])
    sa = server.create_service_account(project["id"])
    perms = client.admin.organization.projects.model_permissions
    perms.update(project["id"], mode="deny_list", model_ids=["gpt-4o"])
    for value in (k["value"], sa["api_key"]["value"]):
        c = server.gateway(value)
        assert_error(sdk_error(_chat, c, "gpt-4o"), 403, code="model_not_allowed")
        assert_error(sdk_error(_chat, c, "gpt-4o-2024-08-06"), 403, code="model_not_allowed")
        # `gpt-4o` does not cover `gpt-4o-mini` (a different model, not a dated snapshot).
        assert _chat(c, "gpt-4o-mini").choices
        assert _chat(c, "gpt-4.1").choices
    # Another project is unaffected.
    other = server.create_project_key(server.create_project()["id"])
    assert _chat(server.gateway(other["value"]), "gpt-4o").choices
    perms.delete(project["id"])
    assert _chat(server.gateway(k["value"]), "gpt-4o").choices


def test_model_permissions_do_not_depend_on_the_content_type(server, client):
    """The same JSON body is refused whatever `Content-Type` says: providers read it anyway
    (without a type, as curl's default `-d` form type, or with the media type in upper case),
    so the gateway must check it."""
    p = server.create_project()
    k = server.create_project_key(p["id"])
    client.admin.organization.projects.model_permissions.update(
        p["id"], mode="deny_list", model_ids=["gpt-4o"]
    )
    body = json.dumps({"model": "gpt-4o", "messages": HI})
    leaked = []
    for content_type in (
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "Application/JSON",
        "application/json",
    ):
        marker = uniq("mark")
        headers = {"x-kp-test": marker}
        if content_type:
            headers["Content-Type"] = content_type
        resp = server.http(
            "POST", "/v1/chat/completions", body=body, key=k["value"], headers=headers
        )
        if resp.status == 200 or server.mock.requests_with(marker):
            leaked.append((content_type, resp.status))
        else:
            assert_error(resp, 403, code="model_not_allowed")
    assert not leaked, f"a denied model went upstream with these content types: {leaked}"


def test_model_permissions_apply_to_multipart_requests(server, client):
    """Audio and image uploads name their model in a multipart form field."""
    p = server.create_project()
    c = server.gateway(server.create_project_key(p["id"])["value"])
    client.admin.organization.projects.model_permissions.update(
        p["id"], mode="allow_list", model_ids=["gpt-4o-mini"]
    )
    marker = uniq("mark")
    resp = sdk_error(
        c.audio.transcriptions.with_raw_response.create,
        model="whisper-1",
        file=("clip.wav", b"RIFF\x00\x00\x00\x00WAVEfmt "),
        extra_headers={"x-kp-test": marker},
    )
    assert_error(resp, 403, code="model_not_allowed")
    assert server.mock.requests_with(marker) == []


def _early_refusal_then_reuse(server) -> str | None:
    """An admin key's POST to the gateway, its body sent only after the 401 arrived, then a
    second request on the same connection. Returns what went wrong, if anything."""
    import http.client
    import socket

    body = json.dumps({"model": "gpt-4o", "messages": HI}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        sock.sendall(
            (
                "POST /v1/chat/completions HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{server.port}\r\n"
                f"Authorization: Bearer {server.admin_key}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
        )
        first = http.client.HTTPResponse(sock, method="POST")
        first.begin()
        first.read()
        assert first.status == 401
        if (first.getheader("connection") or "").lower() == "close":
            return None  # announced: a client opens a new connection
        try:
            sock.sendall(body)
            sock.sendall(
                (
                    "GET /v1/models HTTP/1.1\r\n"
                    f"Host: 127.0.0.1:{server.port}\r\n"
                    f"Authorization: Bearer {server.admin_key}\r\n\r\n"
                ).encode()
            )
            second = http.client.HTTPResponse(sock, method="GET")
            second.begin()
            second.read()
        except (http.client.RemoteDisconnected, ConnectionError) as e:
            return repr(e)
        assert second.status == 401
        return None
    finally:
        sock.close()


def test_early_refusal_keeps_the_connection_usable(server):
    """A request refused before its body arrived (here: an admin key on the gateway) must leave
    the kept-alive connection usable, or answer with `Connection: close`. Otherwise a client
    such as the SDK sends its next request into a connection the server has dropped
    (`APIConnectionError: Server disconnected without sending a response`)."""
    failures = [f for f in (_early_refusal_then_reuse(server) for _ in range(5)) if f]
    assert not failures, (
        "the server closed a kept-alive connection after an early 401 without "
        f"`Connection: close` ({len(failures)}/5 attempts): {failures[0]}"
    )
