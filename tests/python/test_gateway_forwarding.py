"""The gateway forwards `/v1/*` (outside `/v1/organization`) to the upstream, through the
official SDK: answers, streams, the upstream credential, rate-limit headers, upstream failures
and client disconnects. The upstream is `keyplane-mock-upstream` (see conftest.py), whose
usage is deterministic: prompt tokens = max(1, words), completion tokens = min(limit, 16).
"""

from __future__ import annotations

import json
import time

import httpx2
import openai
import pytest

from kputil import (
    ROUTED_MODEL_PREFIX,
    ROUTED_UPSTREAM_KEY,
    UNREACHABLE_MODEL_PREFIX,
    UPSTREAM_KEY,
    assert_error,
    assert_no_client_secret,
    assert_rate_headers,
    chat_stream_raw,
    error_of,
    mock_completion_text,
    now,
    poll_equal,
    sdk_error,
    uniq,
    usage_totals,
)


@pytest.fixture
def key(server, project) -> dict:
    return server.create_project_key(project["id"])


@pytest.fixture
def gw(server, key):
    """The SDK with a project key, as an application uses it."""
    return server.gateway(key["value"])


def _marker() -> tuple[str, dict[str, str]]:
    """A unique value sent as a header, to find the request among those the mock recorded."""
    m = uniq("mark")
    return m, {"x-kp-test": m}


def _recorded(server, marker: str, n: int = 1) -> list[dict]:
    got = server.mock.requests_with(marker)
    assert len(got) == n, f"expected {n} upstream request(s) marked {marker}, got {got}"
    return got


# ------------------------------------------------------------------ chat completions


def test_chat_completion_is_forwarded_with_the_upstream_credential(server, gw, key):
    marker, hdrs = _marker()
    messages = [
        {"role": "system", "content": "answer briefly"},
        {"role": "user", "content": "what is the keyplane gateway"},
    ]
    raw = gw.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=messages, max_tokens=7, extra_headers=hdrs
    )
    assert raw.status_code == 200
    c = raw.parse()
    assert c.object == "chat.completion"
    assert c.model == "gpt-4o"
    assert c.choices[0].message.content == mock_completion_text(7)
    assert c.choices[0].finish_reason == "length"
    assert (c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.total_tokens) == (7, 7, 14)
    # The provider's request id comes through; Keyplane's own rate-limit headers are set.
    assert raw.headers["x-request-id"].startswith("req_mock")
    rl = assert_rate_headers(raw.headers, limit_requests=500)
    assert int(rl["x-ratelimit-remaining-requests"]) < 500
    assert int(rl["x-ratelimit-limit-tokens"]) == 30_000

    (req,) = _recorded(server, marker)
    assert req["method"] == "POST" and req["path"] == "/v1/chat/completions"
    assert req["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    body = json.loads(req["body"])
    assert body["model"] == "gpt-4o" and body["messages"] == messages and body["max_tokens"] == 7
    assert "stream_options" not in body
    # Nothing the client authenticated with reached the provider, in this or any request.
    for name, value in req["headers"].items():
        assert key["value"] not in value, name
    assert key["value"] not in req["body"]
    assert_no_client_secret(server.mock, server.secrets)


def test_client_organization_and_project_headers_are_not_forwarded(server, key):
    marker, hdrs = _marker()
    c = server.gateway(key["value"], organization="org-clientside", project="proj_clientside")
    c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], extra_headers=hdrs
    )
    (req,) = _recorded(server, marker)
    assert "openai-organization" not in req["headers"], req["headers"]
    assert "openai-project" not in req["headers"], req["headers"]
    assert "org-clientside" not in json.dumps(req)
    assert req["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_rate_limit_reset_headers_use_go_durations(server, gw):
    raw = gw.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}]
    )
    rl = assert_rate_headers(raw.headers)
    # One request of 500/min refills in 120 ms: sub-second resets are in milliseconds.
    assert rl["x-ratelimit-reset-requests"].endswith("ms"), rl


# ------------------------------------------------------------------ streaming


def _collect(stream) -> list:
    chunks = list(stream)
    assert chunks, "empty stream"
    return chunks


def test_stream_without_include_usage_hides_the_usage_chunk(server, gw):
    marker, hdrs = _marker()
    chunks = _collect(
        gw.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "count to five"}],
            max_completion_tokens=5,
            stream=True,
            extra_headers=hdrs,
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == mock_completion_text(5)
    assert chunks[-1].choices and chunks[-1].choices[0].finish_reason == "length"
    usage_only = [ch for ch in chunks if not ch.choices and ch.usage is not None]
    assert usage_only == [], f"the client did not ask for usage: {usage_only}"
    assert all(ch.usage is None for ch in chunks)
    # Keyplane asked the provider for usage on the client's behalf.
    (req,) = _recorded(server, marker)
    body = json.loads(req["body"])
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert req["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_stream_with_include_usage_false_is_also_stripped(server, gw):
    marker, hdrs = _marker()
    chunks = _collect(
        gw.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "a b"}],
            stream=True,
            stream_options={"include_usage": False},
            extra_headers=hdrs,
        )
    )
    assert all(ch.choices and ch.usage is None for ch in chunks), chunks[-2:]
    (req,) = _recorded(server, marker)
    assert json.loads(req["body"])["stream_options"] == {"include_usage": True}


def test_stream_with_include_usage_gets_the_usage_chunk(server, gw):
    marker, hdrs = _marker()
    chunks = _collect(
        gw.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "one two three"}],
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=hdrs,
        )
    )
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None, last
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (3, 4)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == mock_completion_text(4)
    (req,) = _recorded(server, marker)
    assert json.loads(req["body"])["stream_options"] == {"include_usage": True}


def test_stream_passes_through_raw_sse(server, key):
    """On the wire: `text/event-stream`, `data:` events, `[DONE]` last, no usage object."""
    sock, resp = chat_stream_raw(
        server.port,
        key["value"],
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    )
    try:
        assert resp.status == 200
        assert resp.getheader("content-type", "").startswith("text/event-stream")
        assert resp.getheader("x-ratelimit-limit-requests") is not None
        data = resp.read().decode()
    finally:
        sock.close()
    events = [e for e in data.split("\n\n") if e.strip()]
    assert events[-1].strip() == "data: [DONE]", events[-3:]
    payloads = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert all(p["choices"] for p in payloads)
    assert not any(isinstance(p.get("usage"), dict) for p in payloads)


def test_a_paced_stream_reaches_the_client_event_by_event(server, gw):
    """Events the provider sends apart are passed on apart, not held for the next one."""
    delay = 0.15
    arrivals = []
    stream = gw.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "x"}],
        max_completion_tokens=6,
        stream=True,
        extra_headers={"x-mock-chunk-delay-ms": str(int(delay * 1000))},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
    assert len(arrivals) == 6, arrivals
    # Held back, they would arrive together at the end; passed on, about `delay` apart (the
    # bound is half of that, so a loaded machine's jitter cannot fail it).
    spread = arrivals[-1] - arrivals[0]
    assert spread > (len(arrivals) - 1) * delay / 2, [b - a for a, b in zip(arrivals, arrivals[1:])]


def test_legacy_completions_stream_strips_usage_too(server, gw):
    marker, hdrs = _marker()
    chunks = _collect(
        gw.completions.create(
            model="gpt-4o-mini", prompt="a b c", max_tokens=3, stream=True, extra_headers=hdrs
        )
    )
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == mock_completion_text(3)
    assert all(ch.choices and ch.usage is None for ch in chunks)
    (req,) = _recorded(server, marker)
    assert json.loads(req["body"])["stream_options"] == {"include_usage": True}


# ------------------------------------------------------------------ other endpoints


def test_embeddings_completions_and_models(server, gw):
    marker, hdrs = _marker()
    e = gw.embeddings.create(
        model="text-embedding-3-small", input=["alpha beta", "gamma"], extra_headers=hdrs
    )
    assert len(e.data) == 2 and e.usage.prompt_tokens == 3
    assert e.model == "text-embedding-3-small"

    c = gw.completions.create(
        model="gpt-4o-mini", prompt="once upon a time", max_tokens=6, extra_headers=hdrs
    )
    assert c.choices[0].text == mock_completion_text(6)
    assert (c.usage.prompt_tokens, c.usage.completion_tokens) == (4, 6)

    models = gw.models.list()
    ids = [m.id for m in models]
    assert "gpt-4o" in ids and "text-embedding-3-small" in ids
    assert gw.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError) as exc:
        gw.models.retrieve("no-such-model")
    assert exc.value.code == "model_not_found"

    reqs = _recorded(server, marker, 2)
    assert [r["path"] for r in reqs] == ["/v1/embeddings", "/v1/completions"]
    assert all(r["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}" for r in reqs)


def test_responses_plain_and_streamed(server, gw):
    marker, hdrs = _marker()
    r = gw.responses.create(
        model="gpt-4o",
        instructions="be terse",
        input="tell me a story",
        max_output_tokens=20,
        extra_headers=hdrs,
    )
    assert r.output_text == mock_completion_text(16)
    assert (r.usage.input_tokens, r.usage.output_tokens) == (6, 16)

    events = list(
        gw.responses.create(
            model="gpt-4o", input="short one", max_output_tokens=3, stream=True, extra_headers=hdrs
        )
    )
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == mock_completion_text(3)
    final = events[-1]
    assert final.type in ("response.completed", "response.incomplete"), final.type
    assert (final.response.usage.input_tokens, final.response.usage.output_tokens) == (2, 3)
    reqs = _recorded(server, marker, 2)
    # The Responses API is not given `stream_options` (it always reports usage).
    assert "stream_options" not in json.loads(reqs[1]["body"])


def test_arbitrary_routes_are_forwarded_as_they_are(server, gw, key):
    marker, hdrs = _marker()
    # files.list: the mock echoes what arrived.
    raw = gw.files.with_raw_response.list(extra_headers=hdrs)
    assert raw.status_code == 200
    echo = json.loads(raw.text)
    assert (echo["object"], echo["method"], echo["path"]) == ("mock.echo", "GET", "/v1/files")

    resp = server.http(
        "GET", "/v1/batches?limit=2&after=batch_abc", key=key["value"], headers=hdrs
    )
    assert resp.status == 200, resp
    assert resp.json() == {
        "object": "mock.echo",
        "method": "GET",
        "path": "/v1/batches",
        "query": "limit=2&after=batch_abc",
        "body_bytes": 0,
    }
    # A write to a route Keyplane has never heard of, with a body, and a DELETE.
    posted = gw.post(
        "/brand_new/things", body={"hello": "world"}, cast_to=object, options={"headers": hdrs}
    )
    assert posted["method"] == "POST" and posted["path"] == "/v1/brand_new/things"
    deleted = gw.delete("/files/file-abc123", cast_to=object, options={"headers": hdrs})
    assert (deleted["method"], deleted["path"]) == ("DELETE", "/v1/files/file-abc123")

    reqs = _recorded(server, marker, 4)
    assert all(r["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}" for r in reqs)
    assert reqs[1]["query"] == "limit=2&after=batch_abc"
    assert json.loads(reqs[2]["body"]) == {"hello": "world"}
    assert posted["body_bytes"] == len(reqs[2]["body"].encode())
    assert_no_client_secret(server.mock, server.secrets)


def test_models_route_to_their_configured_upstream(server, gw):
    """`[[upstreams]]` with `models = ["kp-routed-*"]` gets those models, with its own key."""
    marker, hdrs = _marker()
    model = ROUTED_MODEL_PREFIX + "small"
    c = gw.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], extra_headers=hdrs
    )
    assert c.model == model
    gw.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], extra_headers=hdrs
    )
    routed, default = _recorded(server, marker, 2)
    assert routed["headers"]["authorization"] == f"Bearer {ROUTED_UPSTREAM_KEY}"
    assert default["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"


# ------------------------------------------------------------------ upstream failures


def test_upstream_500_passes_through(server, gw):
    marker, hdrs = _marker()
    with pytest.raises(openai.InternalServerError) as exc:
        gw.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={**hdrs, "x-mock-status": "500"},
        )
    resp = error_of(exc.value)
    assert_error(resp, 500, type="server_error")
    _recorded(server, marker)


def test_upstream_timeout_is_504(server, gw):
    started = time.monotonic()
    resp = sdk_error(
        gw.chat.completions.create,
        model="gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-mock-delay-ms": "3000"},
    )
    elapsed = time.monotonic() - started
    err = assert_error(resp, 504, type="server_error", code="upstream_timeout")
    assert "did not answer in time" in err["message"]
    assert elapsed < 2.5, f"the 1 s upstream timeout took {elapsed:.2f}s"


def test_a_stream_silent_past_the_upstream_timeout_is_cut(server, gw):
    """The upstream timeout (1 s here) also bounds each silence inside a streamed body: a
    provider that stops mid-stream does not hold the client's connection forever."""
    started = time.monotonic()
    stream = gw.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "x"}],
        max_completion_tokens=3,
        stream=True,
        extra_headers={"x-mock-chunk-delay-ms": "4000"},
    )
    received = 0
    with pytest.raises((httpx2.HTTPError, openai.APIError)):
        for _ in stream:
            received += 1
    elapsed = time.monotonic() - started
    assert received >= 1, "the first event, sent at once, came through"
    assert elapsed < 3.5, f"the stream was cut after {elapsed:.2f}s, not after ~1 s of silence"


def test_unreachable_upstream_is_502(server, gw):
    resp = sdk_error(
        gw.chat.completions.create,
        model=UNREACHABLE_MODEL_PREFIX + "model",
        messages=[{"role": "user", "content": "hi"}],
    )
    err = assert_error(resp, 502, type="server_error", code="upstream_unreachable")
    assert "could not be reached" in err["message"]
    # Nothing about the organization's credential or the upstream's address leaks.
    assert UPSTREAM_KEY not in resp.text and "127.0.0.1" not in resp.text


def test_server_whose_only_upstream_is_down_answers_502(fresh_server, dead_port):
    srv = fresh_server(env={"KEYPLANE_UPSTREAM_URL": f"http://127.0.0.1:{dead_port}/v1"})
    p = srv.create_project()
    c = srv.gateway(srv.create_project_key(p["id"])["value"])
    for call in (
        lambda: c.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        ),
        c.models.list,
        lambda: c.embeddings.create(model="text-embedding-3-small", input="x"),
    ):
        resp = sdk_error(call)
        err = assert_error(resp, 502, type="server_error", code="upstream_unreachable")
        assert "default" in err["message"], err
    # The Admin API does not depend on the upstream.
    assert srv.client().admin.organization.projects.retrieve(p["id"]).id == p["id"]


@pytest.mark.parametrize("status", ["401", "403"])
def test_upstream_rejecting_the_credential_is_502(server, gw, status):
    resp = sdk_error(
        gw.chat.completions.create,
        model="gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-mock-status": status},
    )
    err = assert_error(resp, 502, type="server_error", code="upstream_auth_failed")
    assert "upstream" in err["message"]
    assert UPSTREAM_KEY not in resp.text


def test_failed_upstream_requests_are_not_metered(server, client, project, key, gw):
    start = now() - 60
    for status in ("500", "401"):
        sdk_error(
            gw.chat.completions.create,
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-mock-status": status},
        )
    gw.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "a b"}])
    expected = {
        (key["id"], "gpt-4o"): {
            "num_model_requests": 1,
            "input_tokens": 2,
            "output_tokens": 16,
            "input_cached_tokens": 0,
        }
    }
    got = poll_equal(
        lambda: usage_totals(client, "completions", start=start, project_ids=[project["id"]]),
        expected,
    )
    assert got == expected


# ------------------------------------------------------------------ client disconnects


def test_client_disconnect_mid_stream_is_metered(server, client, project, key):
    start = now() - 60
    sock, resp = chat_stream_raw(
        server.port,
        key["value"],
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "tell me everything"}],
            "stream": True,
        },
        headers={"x-mock-chunk-delay-ms": "200"},
    )
    assert resp.status == 200
    # The first event (one word) arrives; 15 more would follow, 200 ms apart.
    assert resp.read(6) == b"data: "
    sock.close()
    resp.close()

    got = poll_equal(
        lambda: {
            k: v["num_model_requests"]
            for k, v in usage_totals(
                client, "completions", start=start, project_ids=[project["id"]]
            ).items()
        },
        {(key["id"], "gpt-4o"): 1},
    )
    assert got == {(key["id"], "gpt-4o"): 1}
    # Keyplane keeps serving, on this key too.
    c = server.gateway(key["value"])
    assert c.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "still there"}]
    ).choices[0].message.content

