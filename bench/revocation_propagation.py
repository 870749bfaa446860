#!/usr/bin/env python3
"""Revocation propagation across instances: two `keyplane serve` on one PostgreSQL database;
each of N keys is used through instance B (so B has it cached), deleted through instance A, and
B is polled until it refuses the key. Reports p50/p99/max of the time from A's answer to B's
first refusal.

    cargo build -p keyplane-cli -p keyplane-mock-upstream
    .venv/bin/python bench/revocation_propagation.py --revocations 1000

Needs PostgreSQL at KEYPLANE_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "python"))

import kputil  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--revocations", type=int, default=1000)
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="kp-bench-rev-"))
    mock = kputil.Mock("bench-mock")
    db = kputil.Database("postgres", workdir)
    servers = [
        kputil.Server("postgres", db, f"bench-rev-{i}", env=kputil.gateway_env(mock))
        for i in range(2)
    ]
    try:
        servers[0].init()
        servers[1].admin_key = servers[0].admin_key
        for s in servers:
            s.start()
        a, b = servers
        conn_a = http.client.HTTPConnection("127.0.0.1", a.port)
        conn_b = http.client.HTTPConnection("127.0.0.1", b.port)

        def call(conn, method, path, key, body=None):
            headers = {"Authorization": f"Bearer {key}"}
            if body is not None:
                headers["Content-Type"] = "application/json"
                body = json.dumps(body)
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, data

        project = a.create_project()["id"]
        times = []
        for i in range(args.revocations):
            st, data = call(conn_a, "POST", f"/v1/organization/projects/{project}/api_keys",
                            a.admin_key, {"name": f"k{i}"})
            assert st == 200, data
            key = json.loads(data)
            assert call(conn_b, "GET", "/v1/models", key["value"])[0] == 200
            st, _ = call(conn_a, "DELETE",
                         f"/v1/organization/projects/{project}/api_keys/{key['id']}", a.admin_key)
            assert st == 200
            t0 = time.perf_counter()
            while True:
                st, _ = call(conn_b, "GET", "/v1/models", key["value"])
                if st == 401:
                    break
                assert st == 200, st
                if time.perf_counter() - t0 > 10:
                    raise SystemExit(f"key {key['id']} still accepted by B after 10 s")
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        q = statistics.quantiles(times, n=100)
        print(json.dumps({
            "revocations": len(times),
            "p50_ms": round(q[49], 2),
            "p99_ms": round(q[98], 2),
            "max_ms": round(times[-1], 2),
            "mean_ms": round(statistics.mean(times), 2),
        }))
    finally:
        for s in servers:
            s.kill()
        db.drop()
        mock.close()


if __name__ == "__main__":
    main()
