"""Metering: the Usage and Costs APIs report what went through the gateway (streamed or not),
nothing is lost on SIGTERM, and spend alerts fire a signed webhook once.

Token counts are the mock's (prompt = max(1, words), completion = min(limit, 16)); prices are
the catalog's: gpt-4o $2.50 / $10.00 per 1M input / output tokens, gpt-4o-mini $0.15 / $0.60,
text-embedding-3-small $0.02.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import time
import urllib.parse

import pytest

from kputil import (
    PRICEY_MODEL,
    WebhookReceiver,
    costs_total,
    gateway_config,
    now,
    poll_equal,
    uniq,
    usage_totals,
)

PRICES = {  # USD per 1M tokens: (input, output)
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "text-embedding-3-small": (0.02, 0.0),
}


def _cost(model: str, input_tokens: int, output_tokens: int) -> float:
    i, o = PRICES[model]
    return (input_tokens * i + output_tokens * o) / 1e6


def _counters(requests: int, input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "num_model_requests": requests,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_cached_tokens": 0,
    }


def _say(words: int) -> list[dict]:
    return [{"role": "user", "content": " ".join(["word"] * words)}]


def test_completions_usage_per_key_streamed_and_not(server, client):
    start = now() - 60
    p = server.create_project()
    k = server.create_project_key(p["id"])
    sa = client.admin.organization.projects.service_accounts.create(p["id"], name=uniq("bot"))
    a = server.gateway(k["value"])
    b = server.gateway(sa.api_key.value)

    # Key A, gpt-4o: two plain calls (4 + 6 prompt words, 5 output each) and a stream without
    # include_usage (2 words, 16 output): 3 requests, 12 in, 26 out.
    a.chat.completions.create(model="gpt-4o", messages=_say(4), max_tokens=5)
    a.chat.completions.create(model="gpt-4o", messages=_say(6), max_completion_tokens=5)
    for _ in a.chat.completions.create(model="gpt-4o", messages=_say(2), stream=True):
        pass
    # Key A, gpt-4o-mini: a legacy completion stream (3 words, 7 output).
    for _ in a.completions.create(model="gpt-4o-mini", prompt="a b c", max_tokens=7, stream=True):
        pass
    # Key B (service account), gpt-4o-mini: a stream with include_usage (3 words, 9 output),
    # a Responses call (2 words, 4 output) and a streamed one (instructions 2 + input 2, 16).
    for _ in b.chat.completions.create(
        model="gpt-4o-mini",
        messages=_say(3),
        max_completion_tokens=9,
        stream=True,
        stream_options={"include_usage": True},
    ):
        pass
    b.responses.create(model="gpt-4o-mini", input="two words", max_output_tokens=4)
    for _ in b.responses.create(
        model="gpt-4o-mini", instructions="be nice", input="hello there", stream=True
    ):
        pass

    expected = {
        (k["id"], "gpt-4o", p["id"]): _counters(3, 12, 26),
        (k["id"], "gpt-4o-mini", p["id"]): _counters(1, 3, 7),
        (sa.api_key.id, "gpt-4o-mini", p["id"]): _counters(3, 3 + 2 + 4, 9 + 4 + 16),
    }
    got = poll_equal(
        lambda: usage_totals(
            client,
            "completions",
            start=start,
            group_by=("api_key_id", "model", "project_id"),
            project_ids=[p["id"]],
        ),
        expected,
    )
    assert got == expected

    # The same through the unfiltered organization view, grouped by key only.
    by_key = usage_totals(client, "completions", start=start, group_by=("api_key_id",))
    assert by_key[(k["id"],)] == _counters(4, 15, 33)
    assert by_key[(sa.api_key.id,)] == _counters(3, 9, 29)
    # Filtered by key.
    only_b = usage_totals(
        client, "completions", start=start, group_by=("model",), api_key_ids=[sa.api_key.id]
    )
    assert only_b == {("gpt-4o-mini",): _counters(3, 9, 29)}


def test_embeddings_usage(server, client):
    start = now() - 60
    p = server.create_project()
    k = server.create_project_key(p["id"])
    c = server.gateway(k["value"])
    c.embeddings.create(model="text-embedding-3-small", input="one two three")
    c.embeddings.create(model="text-embedding-3-small", input=["four five", "six"])
    c.embeddings.create(model="text-embedding-3-large", input=[[1, 2, 3, 4]])
    expected = {
        (k["id"], "text-embedding-3-small"): {"num_model_requests": 2, "input_tokens": 6},
        (k["id"], "text-embedding-3-large"): {"num_model_requests": 1, "input_tokens": 4},
    }
    got = poll_equal(
        lambda: usage_totals(client, "embeddings", start=start, project_ids=[p["id"]]), expected
    )
    assert got == expected
    # Embeddings are not completions.
    assert usage_totals(client, "completions", start=start, project_ids=[p["id"]]) == {}


def test_costs_follow_the_catalog_prices(server, client):
    start = now() - 60
    p = server.create_project()
    c = server.gateway(server.create_project_key(p["id"])["value"])
    # 4 in / 16 out and 10 in / 5 out on gpt-4o; a stream of 2 in / 16 out.
    c.chat.completions.create(model="gpt-4o", messages=_say(4))
    c.chat.completions.create(model="gpt-4o", messages=_say(10), max_tokens=5)
    for _ in c.chat.completions.create(model="gpt-4o", messages=_say(2), stream=True):
        pass
    expected = _cost("gpt-4o", 4, 16) + _cost("gpt-4o", 10, 5) + _cost("gpt-4o", 2, 16)
    assert expected > 0
    got = poll_equal(
        lambda: round(costs_total(client, start=start, project_id=p["id"]), 9),
        round(expected, 9),
    )
    assert got == pytest.approx(expected, rel=0, abs=1e-9)


def test_costs_of_cheap_requests_are_not_rounded_away(server, client):
    """Ten embedding calls of 5 tokens at $0.02 / 1M tokens cost $0.000001 in all."""
    start = now() - 60
    p = server.create_project()
    c = server.gateway(server.create_project_key(p["id"])["value"])
    for _ in range(10):
        c.embeddings.create(model="text-embedding-3-small", input="a b c d e")
    expected = 10 * _cost("text-embedding-3-small", 5, 0)
    flushed = {(): {"num_model_requests": 10, "input_tokens": 50}}
    assert (
        poll_equal(
            lambda: usage_totals(
                client, "embeddings", start=start, group_by=(), project_ids=[p["id"]]
            ),
            flushed,
        )
        == flushed
    )
    got = costs_total(client, start=start, project_id=p["id"])
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-12), (
        f"10 embedding requests of 5 tokens cost ${expected:.9f}, reported ${got:.9f}"
    )


def test_usage_filters_in_repeated_array_style(server, client):
    """`project_ids=a&project_ids=b` (raw HTTP, as curl users write it)."""
    start = now() - 60
    projects = [server.create_project() for _ in range(3)]
    for i, p in enumerate(projects):
        c = server.gateway(server.create_project_key(p["id"])["value"])
        for _ in range(i + 1):
            c.chat.completions.create(model="gpt-4o-mini", messages=_say(2), max_tokens=3)
    a, b, skipped = (p["id"] for p in projects)
    qs = urllib.parse.urlencode(
        [
            ("start_time", start),
            ("bucket_width", "1m"),
            ("project_ids", a),
            ("project_ids", b),
            ("group_by", "project_id"),
        ]
    )

    def totals() -> dict:
        body = server.ok("GET", f"/usage/completions?{qs}")
        assert body["object"] == "page"
        out: dict = {}
        for bucket in body["data"]:
            assert bucket["object"] == "bucket"
            assert bucket["end_time"] - bucket["start_time"] == 60
            for r in bucket["results"]:
                assert r["object"] == "organization.usage.completions.result"
                out[r["project_id"]] = out.get(r["project_id"], 0) + r["num_model_requests"]
        return out

    assert poll_equal(totals, {a: 1, b: 2}) == {a: 1, b: 2}
    # The same filter on costs (1d buckets), repeated style too.
    qs = urllib.parse.urlencode(
        [("start_time", start), ("project_ids", a), ("project_ids", b), ("group_by", "project_id")]
    )
    body = server.ok("GET", f"/costs?{qs}")
    seen = {r["project_id"] for bucket in body["data"] for r in bucket["results"]}
    assert seen == {a, b}, body


def test_cached_tokens_are_reported_and_priced(server, client):
    start = now() - 60
    p = server.create_project()
    k = server.create_project_key(p["id"])
    c = server.gateway(k["value"])
    r = c.chat.completions.create(
        model="gpt-4o", messages=_say(10), extra_headers={"x-mock-cached-tokens": "4"}
    )
    assert r.usage.prompt_tokens_details.cached_tokens == 4
    expected = {
        (k["id"], "gpt-4o"): {
            "num_model_requests": 1,
            "input_tokens": 10,
            "output_tokens": 16,
            "input_cached_tokens": 4,
        }
    }
    got = poll_equal(
        lambda: usage_totals(client, "completions", start=start, project_ids=[p["id"]]), expected
    )
    assert got == expected
    # 6 uncached at $2.50, 4 cached at $1.25, 16 out at $10 per 1M.
    assert costs_total(client, start=start, project_id=p["id"]) == pytest.approx(
        (6 * 2.50 + 4 * 1.25 + 16 * 10.0) / 1e6, rel=0, abs=1e-9
    )


def test_usage_from_start_time_includes_the_rest_of_that_minute(server, client):
    """`start_time` is inclusive: a request made after it is reported even when start_time is
    not on a minute boundary."""
    while not 2 <= now() % 60 <= 50:  # start_time inside a minute, with time to spare
        time.sleep(0.5)
    start = now()
    p = server.create_project()
    k = server.create_project_key(p["id"])
    server.gateway(k["value"]).chat.completions.create(
        model="gpt-4o-mini", messages=_say(2), max_tokens=3
    )
    time.sleep(1.1)  # the default end_time (now) must be after start_time
    expected = {(k["id"], "gpt-4o-mini"): _counters(1, 2, 3)}
    got = poll_equal(
        lambda: usage_totals(client, "completions", start=start, project_ids=[p["id"]]), expected
    )
    assert got == expected, f"start_time={start} ({start % 60}s into its minute)"


def test_requests_are_metered_under_their_model_whatever_the_content_type(server, client):
    start = now() - 60
    p = server.create_project()
    k = server.create_project_key(p["id"])
    body = json.dumps({"model": "gpt-4o", "messages": _say(4)})
    resp = server.http(
        "POST",
        "/v1/chat/completions",
        body=body,
        key=k["value"],
        headers={"Content-Type": "text/plain"},
    )
    assert resp.status == 200, resp
    expected = {(k["id"], "gpt-4o"): _counters(1, 4, 16)}
    got = poll_equal(
        lambda: usage_totals(client, "completions", start=start, project_ids=[p["id"]]), expected
    )
    assert got == expected
    assert costs_total(client, start=start, project_id=p["id"]) == pytest.approx(
        _cost("gpt-4o", 4, 16), rel=0, abs=1e-9
    )


# ------------------------------------------------------------------ durability


def test_sigterm_loses_no_usage(fresh_server, backend):
    srv = fresh_server()
    start = now() - 60
    p = srv.create_project()
    k = srv.create_project_key(p["id"])
    c = srv.gateway(k["value"])
    n_plain, n_stream = 12, 4
    for _ in range(n_plain):
        c.chat.completions.create(model="gpt-4o", messages=_say(3), max_tokens=2)
    for _ in range(n_stream):
        for _ in c.chat.completions.create(model="gpt-4o", messages=_say(1), stream=True):
            pass
    # At once: before the next flush tick (at most 1 s away) could write the last requests.
    assert srv.stop(signal.SIGTERM) == 0, srv.log_text()[-3000:]

    srv.start()
    admin = srv.client()
    expected = {(k["id"], "gpt-4o"): _counters(16, 12 * 3 + 4 * 1, 12 * 2 + 4 * 16)}
    got = poll_equal(
        lambda: usage_totals(admin, "completions", start=start, project_ids=[p["id"]]),
        expected,
        timeout=3,
    )
    assert got == expected
    key = srv.ok("GET", f"/projects/{p['id']}/api_keys/{k['id']}")
    assert isinstance(key["last_used_at"], int) and key["last_used_at"] >= start, key


# ------------------------------------------------------------------ spend alerts


def test_spend_alert_fires_a_signed_webhook_once(fresh_server, mock, dead_port):
    hook = WebhookReceiver()
    secret = "whsec-" + uniq("s")
    try:
        srv = fresh_server(
            env={
                "KEYPLANE_ALERT_WEBHOOK_URL": hook.url,
                "KEYPLANE_ALERT_WEBHOOK_SECRET": secret,
            },
            config=gateway_config(mock, dead_port),
        )
        admin = srv.client()
        p = srv.create_project()
        quiet = srv.create_project()
        alerts = admin.admin.organization.projects.spend_alerts
        alert = alerts.create(
            p["id"],
            threshold_amount=1,
            currency="USD",
            interval="month",
            notification_channel={"type": "email", "recipients": ["ops@example.com"]},
        )
        alerts.create(
            quiet["id"],
            threshold_amount=1_000_000,
            currency="USD",
            interval="month",
            notification_channel={"type": "email", "recipients": ["ops@example.com"]},
        )
        c = srv.gateway(srv.create_project_key(p["id"])["value"])
        c.chat.completions.create(model=PRICEY_MODEL, messages=_say(1))  # $1.70
        q = srv.gateway(srv.create_project_key(quiet["id"])["value"])
        q.chat.completions.create(model="gpt-4o-mini", messages=_say(1))

        deadline = time.monotonic() + 15
        while not hook.received and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(hook.received) == 1, f"webhook calls after 15 s: {hook.received}"
        call = hook.received[0]
        assert call["path"] == "/hooks/keyplane"
        assert call["headers"]["content-type"].startswith("application/json")
        ts = call["headers"]["x-keyplane-timestamp"]
        assert ts.isdigit() and abs(int(ts) - now()) < 60, ts
        mac = hmac.new(secret.encode(), f"{ts}.".encode() + call["body"], hashlib.sha256)
        assert call["headers"]["x-keyplane-signature"] == "sha256=" + mac.hexdigest()
        body = json.loads(call["body"])
        assert body["type"] == "spend_alert.triggered"
        assert body["alert"]["id"] == alert.id
        assert body["alert"]["project_id"] == p["id"]
        assert body["alert"]["threshold_amount"] == 1
        assert body["spent_cents"] >= 100, body
        assert secret not in call["body"].decode()

        # More spend in the same month: no second call, even after another evaluation.
        c.chat.completions.create(model=PRICEY_MODEL, messages=_say(1))
        time.sleep(11.5)
        assert len(hook.received) == 1, hook.received
    finally:
        hook.close()
