"""Per-project rate limits (`/projects/{id}/rate_limits`) and spend limits
(`/projects/{id}/spend_limit`) as the gateway enforces them."""

from __future__ import annotations

import json
import time

import openai
import pytest

from kputil import (
    PRICEY_MODEL,
    assert_error,
    assert_list_envelope,
    assert_rate_headers,
    error_of,
    sdk_error,
    uniq,
)

HI = [{"role": "user", "content": "hi"}]

# Models the issue names as part of the built-in catalog.
CATALOG_MODELS = {
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o1",
    "o3",
    "o3-mini",
    "o4-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
}


def _chat(c: openai.OpenAI, model: str = "gpt-4o", **kw):
    return c.chat.completions.with_raw_response.create(model=model, messages=HI, **kw)


# ------------------------------------------------------------------ rate limits: the API


def test_every_catalog_model_has_a_rate_limit(server, client, project):
    rls = client.admin.organization.projects.rate_limits
    listed = list(rls.list_rate_limits(project["id"]))  # strict validation, every page
    models = [rl.model for rl in listed]
    assert len(models) == len(set(models)), models
    missing = (CATALOG_MODELS | {PRICEY_MODEL}) - set(models)
    assert not missing, f"no rate limit listed for {missing}"
    for rl in listed:
        assert rl.object == "project.rate_limit"
        assert rl.id == f"rl-{rl.model}"
        assert rl.max_requests_per_1_minute > 0 and rl.max_tokens_per_1_minute > 0
    gpt4o = next(rl for rl in listed if rl.model == "gpt-4o")
    assert (gpt4o.max_requests_per_1_minute, gpt4o.max_tokens_per_1_minute) == (500, 30_000)
    # Paged by hand, the same list.
    small = rls.list_rate_limits(project["id"], limit=4)
    assert [rl.model for rl in small] == models
    raw = server.ok("GET", f"/projects/{project['id']}/rate_limits?limit=3")
    assert len(assert_list_envelope(raw)) == 3 and raw["has_more"] is True


def test_request_limit_refuses_the_next_request_with_429(server, client):
    p = server.create_project()
    k = server.create_project_key(p["id"])
    sa = server.create_service_account(p["id"])
    c = server.gateway(k["value"])
    updated = client.admin.organization.projects.rate_limits.update_rate_limit(
        "rl-gpt-4o", project_id=p["id"], max_requests_per_1_minute=3
    )
    assert (updated.id, updated.model, updated.max_requests_per_1_minute) == (
        "rl-gpt-4o",
        "gpt-4o",
        3,
    )
    assert updated.max_tokens_per_1_minute == 30_000

    remaining = []
    for _ in range(3):
        raw = _chat(c)
        assert raw.status_code == 200
        rl = assert_rate_headers(raw.headers, limit_requests=3)
        remaining.append(int(rl["x-ratelimit-remaining-requests"]))
    assert remaining == [2, 1, 0]

    marker = uniq("mark")
    with pytest.raises(openai.RateLimitError) as exc:
        _chat(c, extra_headers={"x-kp-test": marker})
    resp = error_of(exc.value)
    err = assert_error(resp, 429, type="requests", code="rate_limit_exceeded")
    assert "gpt-4o" in err["message"] and "requests per min" in err["message"], err
    assert "Limit 3" in err["message"], err
    retry_after = resp.headers.get("retry-after")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1, resp
    rl = assert_rate_headers(resp.headers, limit_requests=3)
    assert rl["x-ratelimit-remaining-requests"] == "0"
    assert server.mock.requests_with(marker) == [], "a refused request reached the upstream"

    # The limit is the project's: its service account shares it ...
    assert_error(
        sdk_error(_chat, server.gateway(sa["api_key"]["value"])),
        429,
        type="requests",
        code="rate_limit_exceeded",
    )
    # ... but it is per model ...
    assert _chat(c, "gpt-4o-mini").status_code == 200
    # ... and another project is unaffected.
    other = server.create_project_key(server.create_project()["id"])
    raw = _chat(server.gateway(other["value"]))
    assert raw.status_code == 200
    assert_rate_headers(raw.headers, limit_requests=500)


def test_token_limit_refuses_the_second_request(server, client):
    """TPM 50, requests capped at 40 output tokens (real usage: 1 + 16 tokens): the first fits,
    the second does not while the first's tokens are still counted."""
    p = server.create_project()
    c = server.gateway(server.create_project_key(p["id"])["value"])
    client.admin.organization.projects.rate_limits.update_rate_limit(
        "rl-gpt-4o-mini", project_id=p["id"], max_tokens_per_1_minute=50
    )
    first = _chat(c, "gpt-4o-mini", max_tokens=40)
    assert first.status_code == 200
    assert int(first.headers["x-ratelimit-limit-tokens"]) == 50
    with pytest.raises(openai.RateLimitError) as exc:
        _chat(c, "gpt-4o-mini", max_tokens=40)
    resp = error_of(exc.value)
    err = assert_error(resp, 429, type="tokens", code="rate_limit_exceeded")
    assert "tokens per min" in err["message"] and "Limit 50" in err["message"], err
    assert resp.headers.get("retry-after", "").isdigit(), resp
    assert_rate_headers(resp.headers)
    # Other models of the project keep their own budget.
    assert _chat(c, "gpt-4o").status_code == 200


def test_token_limit_refuses_a_request_larger_than_the_limit(server, client):
    p = server.create_project()
    c = server.gateway(server.create_project_key(p["id"])["value"])
    client.admin.organization.projects.rate_limits.update_rate_limit(
        "rl-gpt-4o-mini", project_id=p["id"], max_tokens_per_1_minute=50
    )
    marker = uniq("mark")
    with pytest.raises(openai.RateLimitError) as exc:
        _chat(c, "gpt-4o-mini", max_tokens=200, extra_headers={"x-kp-test": marker})
    resp = error_of(exc.value)
    err = assert_error(resp, 429, type="tokens", code="rate_limit_exceeded")
    assert "tokens per min (TPM)" in err["message"] and "Limit 50" in err["message"], err
    assert int(resp.headers["retry-after"]) >= 1
    assert resp.headers["x-ratelimit-limit-tokens"] == "50"
    assert server.mock.requests_with(marker) == []
    # A refused request took nothing: a small one still fits.
    assert _chat(c, "gpt-4o-mini", max_tokens=1).status_code == 200


def test_raising_a_limit_takes_effect_at_once(server, client):
    p = server.create_project()
    c = server.gateway(server.create_project_key(p["id"])["value"])
    rls = client.admin.organization.projects.rate_limits
    rls.update_rate_limit("rl-gpt-4.1", project_id=p["id"], max_requests_per_1_minute=1)
    assert _chat(c, "gpt-4.1").status_code == 200
    assert_error(sdk_error(_chat, c, "gpt-4.1"), 429, type="requests", code="rate_limit_exceeded")
    rls.update_rate_limit("rl-gpt-4.1", project_id=p["id"], max_requests_per_1_minute=100)
    assert _chat(c, "gpt-4.1").status_code == 200
    listed = {rl.model: rl for rl in rls.list_rate_limits(p["id"])}
    assert listed["gpt-4.1"].max_requests_per_1_minute == 100


# ------------------------------------------------------------------ spend limits


def _pricey(c: openai.OpenAI, **kw):
    return c.chat.completions.create(model=PRICEY_MODEL, messages=HI, **kw)


def _until_refused(call, timeout: float = 4.0) -> tuple[int, object]:
    """Calls until a 429 comes back; returns (successful calls before it, the response)."""
    ok = 0
    deadline = time.monotonic() + timeout
    while True:
        try:
            call()
            ok += 1
        except openai.RateLimitError as e:
            return ok, error_of(e)
        if time.monotonic() > deadline:
            raise AssertionError(f"no 429 within {timeout}s ({ok} requests succeeded)")
        time.sleep(0.2)


def test_spend_limit_is_enforced_and_lifted(server, client):
    p = server.create_project()
    k = server.create_project_key(p["id"])
    c = server.gateway(k["value"])
    limit_api = client.admin.organization.projects.spend_limit
    set_ = limit_api.update(p["id"], threshold_amount=1, currency="USD", interval="month")
    assert (set_.threshold_amount, set_.currency, set_.interval) == (1, "USD", "month")
    assert set_.enforcement.status == "inactive"

    # One request of the priced model costs dollars: the next ones are refused.
    assert _pricey(c).choices
    ok, resp = _until_refused(lambda: _pricey(c))
    assert ok <= 2, f"{ok} more requests passed the spend limit"
    err = assert_error(resp, 429, type="insufficient_quota", code="insufficient_quota")
    assert "spend limit" in err["message"] and p["id"] in err["message"], err
    assert limit_api.retrieve(p["id"]).enforcement.status == "enforcing"
    raw = server.ok("GET", f"/projects/{p['id']}/spend_limit")
    assert raw["enforcement"] == {"status": "enforcing"}, raw

    # Every model and every key of the project, until the limit goes.
    quota = {"type": "insufficient_quota", "code": "insufficient_quota"}
    assert_error(
        sdk_error(c.chat.completions.create, model="gpt-4o-mini", messages=HI), 429, **quota
    )
    sa = server.create_service_account(p["id"])
    assert_error(sdk_error(_pricey, server.gateway(sa["api_key"]["value"])), 429, **quota)
    other = server.create_project_key(server.create_project()["id"])
    assert _pricey(server.gateway(other["value"])).choices

    deleted = limit_api.delete(p["id"])
    assert deleted.deleted is True
    assert _pricey(c).choices
    with pytest.raises(openai.NotFoundError):
        limit_api.retrieve(p["id"])


def test_spend_limit_counts_spend_from_before_it_was_set(server, client):
    """Spend already written to the database counts as soon as the limit is set."""
    p = server.create_project()
    c = server.gateway(server.create_project_key(p["id"])["value"])
    assert _pricey(c).choices
    time.sleep(2.2)  # flushed to the database (every second)
    client.admin.organization.projects.spend_limit.update(
        p["id"], threshold_amount=100, currency="USD", interval="month"
    )
    resp = sdk_error(_pricey, c)
    assert_error(resp, 429, type="insufficient_quota", code="insufficient_quota")


def test_spend_limit_below_the_spend_so_far_is_enforcing(server, client):
    p = server.create_project()
    c = server.gateway(server.create_project_key(p["id"])["value"])
    limit_api = client.admin.organization.projects.spend_limit
    limit_api.update(p["id"], threshold_amount=5000, currency="USD", interval="month")
    assert _pricey(c).choices  # $1.70
    assert limit_api.retrieve(p["id"]).enforcement.status == "inactive"
    assert _pricey(c).choices
    got = limit_api.update(p["id"], threshold_amount=100, currency="USD", interval="month")
    assert got.enforcement.status == "enforcing"
    assert_error(sdk_error(_pricey, c), 429, type="insufficient_quota", code="insufficient_quota")


def test_request_limit_is_exact_under_concurrency(server, client):
    from concurrent.futures import ThreadPoolExecutor

    p = server.create_project()
    value = server.create_project_key(p["id"])["value"]
    client.admin.organization.projects.rate_limits.update_rate_limit(
        "rl-o3-mini", project_id=p["id"], max_requests_per_1_minute=5
    )
    body = {"model": "o3-mini", "messages": HI}

    def one(_):
        return server.http("POST", "/v1/chat/completions", key=value, json_body=body).status

    with ThreadPoolExecutor(12) as pool:
        statuses = sorted(pool.map(one, range(12)))
    assert statuses == [200] * 5 + [429] * 7, statuses


def test_rate_limits_do_not_depend_on_the_content_type(server, client):
    """A JSON body sent as `text/plain` is still a request for its model: it counts against
    (and is refused by) that model's limit, and carries the rate-limit headers."""
    p = server.create_project()
    value = server.create_project_key(p["id"])["value"]
    client.admin.organization.projects.rate_limits.update_rate_limit(
        "rl-gpt-4.1-mini", project_id=p["id"], max_requests_per_1_minute=1
    )
    body = json.dumps({"model": "gpt-4.1-mini", "messages": HI})
    statuses = []
    for _ in range(3):
        resp = server.http(
            "POST",
            "/v1/chat/completions",
            body=body,
            key=value,
            headers={"Content-Type": "text/plain"},
        )
        statuses.append(resp.status)
        if resp.status == 200:
            assert_rate_headers(resp.headers, limit_requests=1)
    assert statuses == [200, 429, 429], statuses


def test_spend_limit_does_not_depend_on_the_content_type(server, client):
    p = server.create_project()
    value = server.create_project_key(p["id"])["value"]
    client.admin.organization.projects.spend_limit.update(
        p["id"], threshold_amount=1, currency="USD", interval="month"
    )
    body = json.dumps({"model": PRICEY_MODEL, "messages": HI})
    statuses = []
    for _ in range(4):
        resp = server.http(
            "POST",
            "/v1/chat/completions",
            body=body,
            key=value,
            headers={"Content-Type": "text/plain"},
        )
        statuses.append(resp.status)
        time.sleep(0.8)
    assert statuses[0] == 200 and statuses[-1] == 429, (
        f"$1.70 requests on a $0.01 limit, sent as text/plain: {statuses}"
    )
