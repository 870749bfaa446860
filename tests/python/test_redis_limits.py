"""Cluster-wide limits: several `keyplane serve` instances on one PostgreSQL database share their
rate-limit and spend counters through Redis (`KEYPLANE_REDIS_URL`), degrade to
`limit / KEYPLANE_INSTANCES` per instance while Redis is unreachable, and recover without a
restart. Needs Redis at 127.0.0.1:6379 (`.ci/run` starts it); every test has its own key prefix.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

import kputil
from kputil import PRICEY_MODEL, assert_error, assert_rate_headers

HI = [{"role": "user", "content": "hi"}]


class Cluster:
    """`n` instances on one fresh PostgreSQL database, forwarding to the session's mock."""

    def __init__(self, workdir, mock, dead_port, n: int, env: dict[str, str], label: str):
        self.db = kputil.Database("postgres", workdir)
        self.servers: list[kputil.Server] = []
        full_env = {**kputil.gateway_env(mock), **env}
        config = kputil.gateway_config(mock, dead_port)
        try:
            for i in range(n):
                s = kputil.Server("postgres", self.db, f"{label}-{i}", env=full_env, config=config)
                s.mock = mock
                self.servers.append(s)
                if i == 0:
                    s.init()
                else:
                    s.admin_key = self.servers[0].admin_key
                s.start()
        except BaseException:
            self.close()
            raise

    @property
    def admin(self) -> kputil.Server:
        return self.servers[0]

    def chat(self, i: int, key: str, model: str) -> kputil.Response:
        s = self.servers[i % len(self.servers)]
        return s.http(
            "POST", "/v1/chat/completions", key=key, json_body={"model": model, "messages": HI}
        )

    def close(self) -> None:
        for s in self.servers:
            s.kill()
        self.db.drop()


@pytest.fixture
def redis_prefix():
    prefix = f"kptest-{uuid.uuid4().hex[:12]}"
    yield prefix
    kputil.redis_delete_prefix(prefix)


@pytest.fixture
def cluster(workdir, mock, dead_port, redis_prefix, request):
    made: list[Cluster] = []

    def make(n: int = 3, *, redis_port: int = kputil.REDIS_PORT, **env: str) -> Cluster:
        c = Cluster(
            workdir,
            mock,
            dead_port,
            n,
            {
                "KEYPLANE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "KEYPLANE_REDIS_PREFIX": redis_prefix,
                "KEYPLANE_INSTANCES": str(n),
                **env,
            },
            f"redis-{request.node.originalname}-{len(made)}",
        )
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def _project_with_limits(c: Cluster, **rpm_by_model: int) -> tuple[str, str]:
    """A project and key whose models have these requests-per-minute limits. Set through the
    first instance before any gateway request, so no instance has cached the project's policy."""
    p = c.admin.create_project()
    key = c.admin.create_project_key(p["id"])["value"]
    for model, rpm in rpm_by_model.items():
        c.admin.ok(
            "POST",
            f"/projects/{p['id']}/rate_limits/rl-{model}",
            json_body={"max_requests_per_1_minute": rpm},
        )
    return p["id"], key


def _assert_refused(resp: kputil.Response, limit: int) -> None:
    assert_error(resp, 429, type="requests", code="rate_limit_exceeded")
    headers = assert_rate_headers(resp.headers, limit_requests=limit)
    assert headers["x-ratelimit-remaining-requests"] == "0", headers
    retry = resp.headers.get("retry-after", "")
    assert retry.isdigit() and int(retry) >= 1, resp


def test_a_request_limit_is_shared_by_every_instance(cluster):
    c = cluster(3)
    _, key = _project_with_limits(c, **{"gpt-4o": 10})
    responses = [c.chat(i, key, "gpt-4o") for i in range(30)]
    statuses = [r.status for r in responses]
    assert statuses.count(200) == 10, statuses
    assert statuses[:10] == [200] * 10, statuses
    # One bucket for the cluster: the remaining count goes down across instances.
    remaining = [
        int(assert_rate_headers(r.headers, limit_requests=10)["x-ratelimit-remaining-requests"])
        for r in responses[:10]
    ]
    assert remaining == list(range(9, -1, -1)), remaining
    for r in responses[10:]:
        _assert_refused(r, 10)


def test_spend_recorded_on_one_instance_is_enforced_by_another(cluster, redis_prefix):
    c = cluster(2)
    a, b = c.servers
    p = a.create_project()
    key = a.create_project_key(p["id"])["value"]
    a.ok(
        "POST",
        f"/projects/{p['id']}/spend_limit",
        json_body={"threshold_amount": 100, "currency": "USD", "interval": "month"},
    )
    # B reads the project's spend (0, from the database into Redis) before A spends.
    assert c.chat(1, key, "gpt-4o-mini").status == 200
    # One priced request through A costs more than the $1 limit ...
    assert c.chat(0, key, PRICEY_MODEL).status == 200
    # ... and B refuses the next request at once: its figure is Redis', not a 30 s old copy.
    resp = kputil.poll(lambda: (r := c.chat(1, key, "gpt-4o-mini")).status == 429 and r, timeout=2)
    assert resp, "instance B did not see the spend recorded through A"
    assert_error(resp, 429, type="insufficient_quota", code="insufficient_quota")
    keys = kputil.redis_command("KEYS", f"{redis_prefix}:spend:{{{p['id']}}}:*")
    assert len(keys) == 1, keys
    assert int(kputil.redis_command("GET", keys[0])) >= 1_000_000_000  # nano-USD, > $1
    assert 0 < kputil.redis_command("TTL", keys[0]) <= 40 * 86_400
    # Both instances report the limit as enforcing.
    for s in (a, b):
        assert s.ok("GET", f"/projects/{p['id']}/spend_limit")["enforcement"] == {
            "status": "enforcing"
        }


def test_redis_outage_degrades_to_a_share_per_instance_and_recovers(cluster, redis_prefix):
    proxy = kputil.TcpProxy(kputil.REDIS_PORT)
    try:
        c = cluster(3, redis_port=proxy.port, KEYPLANE_REDIS_TIMEOUT_MS="50")
        _, key = _project_with_limits(c, **{"gpt-4o": 9, "gpt-4.1": 6, "o3-mini": 6})
        for s in c.servers:
            assert kputil.metrics(s.port)["keyplane_redis_up"] == 1

        # Background traffic on a model with room to spare, through the outage and back.
        seen: list[int] = []
        stop = threading.Event()

        def traffic() -> None:
            i = 0
            while not stop.is_set():
                seen.append(c.chat(i, key, "gpt-4o-mini").status)
                i += 1
                time.sleep(0.05)

        bg = threading.Thread(target=traffic, daemon=True)
        bg.start()

        # Cluster-wide while Redis is there.
        statuses = [c.chat(i, key, "gpt-4o").status for i in range(18)]
        assert statuses.count(200) == 9, statuses

        proxy.cut()
        # Each instance alone enforces 6 / 3 = 2 requests per minute.
        per_instance = {i: [c.chat(i, key, "gpt-4.1") for _ in range(4)] for i in range(3)}
        for i, responses in per_instance.items():
            got = [r.status for r in responses]
            assert got == [200, 200, 429, 429], (i, got)
            assert_rate_headers(responses[0].headers, limit_requests=2)
            _assert_refused(responses[-1], 2)
        for s in c.servers:
            m = kputil.metrics(s.port)
            assert m["keyplane_redis_up"] == 0, m
            assert m["keyplane_redis_fallback_total"] >= 1, m
        for s in c.servers:
            # Warned once per outage (at most every 10 s), not once per request.
            assert 1 <= s.log_text().count("Redis unavailable") <= 2, s.label

        proxy.restore()
        recovered = kputil.poll(
            lambda: all(kputil.metrics(s.port)["keyplane_redis_up"] == 1 for s in c.servers),
            timeout=10,
        )
        assert recovered, [kputil.metrics(s.port) for s in c.servers]
        # Cluster-wide again, without a restart.
        statuses = [c.chat(i, key, "o3-mini").status for i in range(12)]
        assert statuses.count(200) == 6, statuses

        stop.set()
        bg.join(timeout=10)
        assert seen and all(s == 200 for s in seen), sorted(set(seen))
        assert any("Redis is reachable again" in s.log_text() for s in c.servers)
        # The URL (which may carry a password) is never logged.
        for s in c.servers:
            assert f"127.0.0.1:{proxy.port}" not in s.log_text()
    finally:
        proxy.close()


def test_redis_down_at_startup_still_serves_on_the_share(cluster):
    dead = kputil.TcpProxy(kputil.REDIS_PORT)
    dead.cut()
    try:
        c = cluster(2, redis_port=dead.port)
        _, key = _project_with_limits(c, **{"gpt-4o": 4})
        per_instance = [[c.chat(i, key, "gpt-4o").status for _ in range(3)] for i in range(2)]
        assert per_instance == [[200, 200, 429]] * 2, per_instance
        assert kputil.metrics(c.servers[0].port)["keyplane_redis_up"] == 0
    finally:
        dead.close()


def test_a_changed_limit_keeps_what_was_used(cluster, redis_prefix):
    c = cluster(1)
    project, key = _project_with_limits(c, **{"gpt-4o": 10})
    assert [c.chat(0, key, "gpt-4o").status for _ in range(4)] == [200] * 4
    # Lowered to 6 with 4 used: 2 left (not 6, not 0).
    c.admin.ok(
        "POST",
        f"/projects/{project}/rate_limits/rl-gpt-4o",
        json_body={"max_requests_per_1_minute": 6},
    )
    got = [c.chat(0, key, "gpt-4o") for _ in range(3)]
    assert [r.status for r in got] == [200, 200, 429], got
    assert_rate_headers(got[0].headers, limit_requests=6)
    bucket = f"{redis_prefix}:rl:{{{project}}}:gpt-4o:rpm"
    assert float(kputil.redis_command("HGET", bucket, "cap")) == 6
    # The key disappears once the bucket would be full again (about 6 requests' refill).
    assert 0 < kputil.redis_command("PTTL", bucket) <= 61_000


def test_a_slow_redis_costs_a_request_at_most_the_timeout_and_recovers(cluster):
    proxy = kputil.TcpProxy(kputil.REDIS_PORT)
    try:
        c = cluster(2, redis_port=proxy.port, KEYPLANE_REDIS_TIMEOUT_MS="50")
        _, key = _project_with_limits(c, **{"gpt-4o": 6, "o3-mini": 4})
        assert c.chat(0, key, "gpt-4o-mini").status == 200

        proxy.stall()  # Redis answers nothing (until unstalled)
        timings = {}
        for i in range(2):
            got = []
            for _ in range(4):
                start = time.monotonic()
                got.append(c.chat(i, key, "gpt-4o").status)
                timings.setdefault(i, []).append(time.monotonic() - start)
            # 6 / 2 instances = 3 each.
            assert got == [200, 200, 200, 429], (i, got)
        # Only a probe waits for the timeout; nothing waits for Redis itself.
        slowest = max(t for ts in timings.values() for t in ts)
        assert slowest < 1.0, timings
        assert all(kputil.metrics(s.port)["keyplane_redis_up"] == 0 for s in c.servers)

        proxy.unstall()
        recovered = kputil.poll(
            lambda: all(kputil.metrics(s.port)["keyplane_redis_up"] == 1 for s in c.servers),
            timeout=10,
        )
        assert recovered, [kputil.metrics(s.port) for s in c.servers]
        statuses = [c.chat(i, key, "o3-mini").status for i in range(8)]
        assert statuses.count(200) == 4, statuses
    finally:
        proxy.close()
