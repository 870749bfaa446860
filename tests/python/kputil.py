"""Helpers for the black-box tests: running `keyplane`, raw HTTP, databases, assertions.

Nothing here knows the server's internals beyond its documented surface: the CLI
(`init`, `serve`), the JSON log line that announces the listen address, the HTTP API and the
published key format (`sk-<kind>-` + 16 public-id chars + 36 secret chars + 6 checksum chars).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
from tcpproxy import TcpProxy  # noqa: F401 - re-exported: the outage simulator

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parents[1]
BIN = os.environ.get("KEYPLANE_BIN") or str(REPO / "target" / "debug" / "keyplane")
MOCK_BIN = os.environ.get("KEYPLANE_MOCK_BIN") or str(
    REPO / "target" / "debug" / "keyplane-mock-upstream"
)
PG_ADMIN_URL = (
    os.environ.get("KEYPLANE_TEST_POSTGRES_URL")
    or "postgres://postgres@127.0.0.1:5432/postgres"
)
OUTPUT_DIR = TESTS_DIR / "test-output"
REDIS_HOST = "127.0.0.1"
REDIS_PORT = int(os.environ.get("KEYPLANE_TEST_REDIS_PORT") or 6379)

STARTUP_TIMEOUT = 30.0
HTTP_TIMEOUT = 30.0

OWNER_EMAIL = "owner@keyplane.test"
ORG_NAME = "Keyplane Test Org"

# ---------------------------------------------------------------------------------------------
# Key format
# ---------------------------------------------------------------------------------------------

KEY_PREFIXES = {
    "admin": "sk-admin-",
    "project": "sk-proj-",
    "service_account": "sk-svcacct-",
}
PUBLIC_ID_LEN, SECRET_LEN, CHECKSUM_LEN = 16, 36, 6
KEY_RE = {
    kind: re.compile(re.escape(prefix) + r"[0-9A-Za-z]{58}")
    for kind, prefix in KEY_PREFIXES.items()
}
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def assert_key_value(value: Any, kind: str) -> str:
    assert isinstance(value, str), value
    assert KEY_RE[kind].fullmatch(value), f"{value!r} is not a well-formed {kind} key"
    return value


def key_prefix(value: str) -> str:
    for prefix in KEY_PREFIXES.values():
        if value.startswith(prefix):
            return prefix
    raise AssertionError(f"unknown key prefix: {value!r}")


def key_secret(value: str) -> str:
    """The secret part of a key: neither its public id nor its checksum."""
    body = value[len(key_prefix(value)) :]
    return body[PUBLIC_ID_LEN : PUBLIC_ID_LEN + SECRET_LEN]


def secret_fragments(value: str) -> list[str]:
    """Strings that must never appear in storage, logs or audit events for a key `value`."""
    return [value, value[:-CHECKSUM_LEN], key_secret(value)]


def checksum(signed: str) -> str:
    n = zlib.crc32(signed.encode())
    out = []
    for _ in range(CHECKSUM_LEN):
        out.append(BASE62[n % 62])
        n //= 62
    return "".join(reversed(out))


def forge_key(prefix: str, public_id: str, secret: str) -> str:
    """A key with a correct checksum (so it passes the format check) but any id/secret."""
    signed = prefix + public_id + secret
    return signed + checksum(signed)


def assert_redacted(redacted: Any, value: str | None = None) -> None:
    assert isinstance(redacted, str) and redacted, redacted
    if value is not None:
        assert redacted.startswith(key_prefix(value)), (redacted, value)
        assert redacted.endswith(value[-4:]), (redacted, value)
        assert key_secret(value) not in redacted
        assert redacted != value


def uniq(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def now() -> int:
    return int(time.time())


# ---------------------------------------------------------------------------------------------
# Raw HTTP (standard library only, full control over the request line and body)
# ---------------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"<HTTP {self.status} {self.headers.get('content-type')!r} {self.text[:600]!r}>"


_UNSET: Any = object()


def http_request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = HTTP_TIMEOUT,
) -> Response:
    """Sends one HTTP/1.1 request on a fresh connection and reads the whole response.

    The body is written from a second thread, so a server that answers (e.g. 413) before it
    has read the whole body is still heard.
    """
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    for name, value in (headers or {}).items():
        head.append(f"{name}: {value}")
    if body is not None:
        head.append(f"Content-Length: {len(body)}")
    raw_head = ("\r\n".join(head) + "\r\n\r\n").encode("utf-8")

    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(raw_head)
        sender = None
        if body:

            def send_body() -> None:
                try:
                    sock.sendall(body)
                except OSError:
                    pass  # the server stopped reading (e.g. it answered 413 already)

            sender = threading.Thread(target=send_body, daemon=True)
            sender.start()
        resp = http.client.HTTPResponse(sock, method=method)
        resp.begin()
        data = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        status = resp.status
        resp.close()
        if sender is not None:
            sender.join(timeout=5)
        return Response(status, hdrs, data)
    finally:
        sock.close()


# ---------------------------------------------------------------------------------------------
# Databases
# ---------------------------------------------------------------------------------------------


def _pg_connect(url: str):
    import psycopg

    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except Exception as e:  # noqa: BLE001 - surfaced as a test failure, never a skip
        raise RuntimeError(
            f"PostgreSQL is unreachable at {url} (set KEYPLANE_TEST_POSTGRES_URL): {e}"
        ) from e


class Database:
    """A fresh, empty database for one server: a SQLite file or a PostgreSQL database."""

    def __init__(self, backend: str, workdir: Path):
        self.backend = backend
        self.name = f"kp_test_{uuid.uuid4().hex[:12]}"
        if backend == "sqlite":
            self.dir = workdir / self.name
            self.dir.mkdir(parents=True)
            self.path = self.dir / "kp.db"
            self.url = f"sqlite://{self.path}"
        elif backend == "postgres":
            with _pg_connect(PG_ADMIN_URL) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
            parts = urllib.parse.urlsplit(PG_ADMIN_URL)
            self.url = urllib.parse.urlunsplit(parts._replace(path="/" + self.name))
        else:
            raise ValueError(backend)

    def files(self) -> list[Path]:
        """SQLite: the database file and its -wal/-shm companions that exist now."""
        assert self.backend == "sqlite"
        return [p for p in self.dir.iterdir() if p.name.startswith("kp.db")]

    def dump_text(self) -> str:
        """PostgreSQL: every row of every table of the database, as text."""
        assert self.backend == "postgres"
        out = []
        with _pg_connect(self.url) as conn:
            tables = conn.execute(
                "SELECT schemaname, tablename FROM pg_tables "
                "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
            ).fetchall()
            assert tables, "the database has no tables"
            for schema, table in tables:
                for (row,) in conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t'):
                    out.append(f"{schema}.{table}: {row}")
        return "\n".join(out)

    def drop(self) -> None:
        if self.backend == "postgres":
            with _pg_connect(PG_ADMIN_URL) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYPLANE_")}
    env["KEYPLANE_LOG_FORMAT"] = "json"
    env.setdefault("RUST_BACKTRACE", "1")
    return env


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BIN, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
        stdin=subprocess.DEVNULL,
    )


class Server:
    """One `keyplane serve` process on its own database.

    `env` adds environment variables to `serve` (e.g. `KEYPLANE_UPSTREAM_URL`, see
    `Mock.env()`); `config` is the text of a `keyplane.toml` passed with `--config`.
    """

    def __init__(
        self,
        backend: str,
        db: Database,
        label: str,
        *,
        env: dict[str, str] | None = None,
        config: str | None = None,
    ):
        self.backend = backend
        self.db = db
        self.label = label
        self.db_url = db.url
        self.env: dict[str, str] = dict(env or {})
        self.config_path: Path | None = None
        # The mock upstream this server forwards to (set by the fixtures).
        self.mock: Mock | None = None
        self.admin_key: str = ""
        self.proc: subprocess.Popen | None = None
        self.port: int = 0
        OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
        self.stderr_path = OUTPUT_DIR / f"{label}.stderr.log"
        self.stderr_path.write_bytes(b"")
        if config is not None:
            self.config_path = OUTPUT_DIR / f"{label}.keyplane.toml"
            self.config_path.write_text(config)
        # Every key value the tests have seen on this server (checked against storage/logs/audit).
        self.secrets: set[str] = set()
        self._clients: list[openai.OpenAI] = []

    # --- lifecycle ---

    def init(self, *, org_name: str = ORG_NAME, owner_email: str = OWNER_EMAIL) -> str:
        res = run_cli(
            "init",
            "--database-url",
            self.db_url,
            "--org-name",
            org_name,
            "--owner-email",
            owner_email,
        )
        assert res.returncode == 0, f"keyplane init failed ({res.returncode}): {res.stderr}"
        key = res.stdout.strip()
        assert res.stdout == key + "\n", f"init must print the key alone: {res.stdout!r}"
        assert_key_value(key, "admin")
        self.admin_key = key
        self.remember(key)
        return key

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        offset = self.stderr_path.stat().st_size
        err = open(self.stderr_path, "ab")
        args = [BIN, "serve", "--listen", "127.0.0.1:0", "--database-url", self.db_url]
        if self.config_path is not None:
            args += ["--config", str(self.config_path)]
        try:
            self.proc = subprocess.Popen(
                args,
                stdout=subprocess.DEVNULL,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env={**_env(), **self.env},
            )
        finally:
            err.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            port = self._serving_port(offset)
            if port:
                self.port = port
                return
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"keyplane serve exited with {self.proc.returncode}:\n{self.log_text(offset)}"
                )
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"keyplane serve did not announce its address:\n{self.log_text(offset)}")

    def _serving_port(self, offset: int) -> int | None:
        for line in self.log_text(offset).splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            fields = rec.get("fields") or {}
            message = fields.get("message", rec.get("message"))
            if message == "keyplane serving":
                listen = fields.get("listen", rec.get("listen"))
                return int(str(listen).rsplit(":", 1)[1])
        return None

    def log_text(self, offset: int = 0) -> str:
        with open(self.stderr_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Sends `sig` and waits; returns the exit code (kills and fails after `timeout`)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"keyplane did not exit within {timeout}s of signal {sig}")
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def close(self) -> None:
        for c in self._clients:
            c.close()
        try:
            if self.proc is not None and self.proc.poll() is None:
                try:
                    self.stop(timeout=10)
                except AssertionError:
                    pass
        finally:
            self.kill()
            self.db.drop()

    # --- HTTP ---

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def http(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = _UNSET,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        key: str | None = _UNSET,
        timeout: float = HTTP_TIMEOUT,
    ) -> Response:
        """A raw request. `key` defaults to the initial admin key; `key=None` sends none."""
        hdrs: dict[str, str] = {"Accept": "application/json"}
        if key is _UNSET:
            key = self.admin_key
        if key is not None:
            hdrs["Authorization"] = f"Bearer {key}"
        if json_body is not _UNSET:
            body = json.dumps(json_body)
            hdrs["Content-Type"] = "application/json"
        if isinstance(body, str):
            body = body.encode("utf-8")
        hdrs.update(headers or {})
        return http_request(self.port, method, path, body=body, headers=hdrs, timeout=timeout)

    def org(self, method: str, path: str, **kw: Any) -> Response:
        """A raw request under /v1/organization."""
        return self.http(method, "/v1/organization" + path, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        """A raw /v1/organization request that must answer 200 with JSON."""
        resp = self.org(method, path, **kw)
        assert resp.status == 200, f"{method} {path}: {resp!r}"
        assert resp.headers.get("content-type", "").startswith("application/json"), resp
        return resp.json()

    def client(self, key: str | None = None, **kw: Any) -> openai.OpenAI:
        c = openai.OpenAI(
            admin_api_key=key or self.admin_key,
            base_url=self.base_url,
            _strict_response_validation=True,
            max_retries=0,
            timeout=HTTP_TIMEOUT,
            **kw,
        )
        self._clients.append(c)
        return c

    def gateway(self, key: str, **kw: Any) -> openai.OpenAI:
        """The SDK as an application uses it: a project/service-account key, no retries."""
        c = openai.OpenAI(
            api_key=key,
            base_url=self.base_url,
            max_retries=0,
            timeout=kw.pop("timeout", HTTP_TIMEOUT),
            **kw,
        )
        self._clients.append(c)
        return c

    def remember(self, value: str | None) -> str | None:
        if value:
            self.secrets.add(value)
        return value

    # --- shortcuts (raw HTTP) ---

    def create_project(self, name: str | None = None) -> dict:
        return self.ok("POST", "/projects", json_body={"name": name or uniq("proj")})

    def create_project_key(self, project_id: str, name: str | None = None, **extra: Any) -> dict:
        body = {"name": name or uniq("key"), **extra}
        key = self.ok("POST", f"/projects/{project_id}/api_keys", json_body=body)
        self.remember(key.get("value"))
        return key

    def create_admin_key(self, name: str | None = None, **extra: Any) -> dict:
        body = {"name": name or uniq("admin"), **extra}
        key = self.ok("POST", "/admin_api_keys", json_body=body)
        self.remember(key.get("value"))
        return key

    def create_service_account(self, project_id: str, name: str | None = None, **extra: Any) -> dict:
        body = {"name": name or uniq("sa"), **extra}
        sa = self.ok("POST", f"/projects/{project_id}/service_accounts", json_body=body)
        if sa.get("api_key"):
            self.remember(sa["api_key"].get("value"))
        return sa


def launch(backend: str, workdir: Path, label: str, **kw: Any) -> Server:
    db = Database(backend, workdir)
    srv = Server(backend, db, label, **kw)
    try:
        srv.init()
        srv.start()
    except BaseException:
        srv.close()
        raise
    return srv


# ---------------------------------------------------------------------------------------------
# The mock upstream (`keyplane-mock-upstream`) and a throw-away webhook receiver
# ---------------------------------------------------------------------------------------------


class Mock:
    """One `keyplane-mock-upstream` process: an OpenAI-compatible fake provider.

    Its token counting rule (see crates/mock-upstream/src/lib.rs) makes usage predictable:
    prompt tokens = max(1, words of the prompt), completion tokens = min(limit, 16).
    """

    def __init__(self, label: str = "mock", record: int = 1000):
        OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
        self.stderr_path = OUTPUT_DIR / f"{label}.stderr.log"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [MOCK_BIN, "--listen", "127.0.0.1:0", "--record", str(record)],
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=_env(),
                text=True,
            )
        line = ""
        ready = threading.Event()

        def read_line() -> None:
            nonlocal line
            line = self.proc.stdout.readline()
            ready.set()

        threading.Thread(target=read_line, daemon=True).start()
        ready.wait(STARTUP_TIMEOUT)
        m = re.fullmatch(r"listening on http://127\.0\.0\.1:(\d+)\s*", line)
        if not m:
            self.close()
            raise RuntimeError(f"mock upstream did not announce its address: {line!r}")
        self.port = int(m.group(1))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def env(self, upstream_key: str) -> dict[str, str]:
        """`keyplane serve` environment forwarding every model here with `upstream_key`."""
        return {"KEYPLANE_UPSTREAM_URL": self.base_url, "KEYPLANE_UPSTREAM_API_KEY": upstream_key}

    def requests(self) -> list[dict]:
        """Every recorded request, oldest first: {seq, method, path, query, headers, body}."""
        resp = http_request(self.port, "GET", "/__mock/requests")
        assert resp.status == 200, resp
        return resp.json()["data"]

    def requests_with(self, marker: str) -> list[dict]:
        """The recorded requests whose headers or body contain `marker`."""
        return [
            r
            for r in self.requests()
            if marker in r["body"] or any(marker in v for v in r["headers"].values())
        ]

    def clear(self) -> None:
        assert http_request(self.port, "DELETE", "/__mock/requests").status == 200

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# The organization's upstream credential every test server forwards with: distinctive, so its
# presence (and the absence of any client key) in what the mock received is unambiguous.
UPSTREAM_KEY = "sk-upstream-keyplane-test-" + uuid.uuid4().hex
# The credential of the `routed` upstream of gateway_config() (read from this variable).
ROUTED_UPSTREAM_KEY_ENV = "KP_TEST_ROUTED_UPSTREAM_KEY"
ROUTED_UPSTREAM_KEY = "sk-routed-keyplane-test-" + uuid.uuid4().hex

# Models of gateway_config(): one priced so high that a single request costs dollars, one
# routed to an upstream that refuses connections, one routed to a separately keyed upstream.
PRICEY_MODEL = "kp-pricey"
PRICEY_PRICE = 100_000.0  # USD per 1M tokens, input and output
UNREACHABLE_MODEL_PREFIX = "kp-unreachable-"
ROUTED_MODEL_PREFIX = "kp-routed-"
UPSTREAM_TIMEOUT_SECS = 1


# With KEYPLANE_TEST_GATEWAY_REDIS=1 every test server keeps its rate-limit and spend counters in
# Redis (one key namespace per test session), so the gateway tests check that both limiters
# behave the same (`scripts/test` runs the limit tests both ways).
GATEWAY_REDIS = os.environ.get("KEYPLANE_TEST_GATEWAY_REDIS") == "1"
GATEWAY_REDIS_PREFIX = f"kptest-session-{uuid.uuid4().hex[:12]}"


def gateway_env(mock: Mock) -> dict[str, str]:
    env = {**mock.env(UPSTREAM_KEY), ROUTED_UPSTREAM_KEY_ENV: ROUTED_UPSTREAM_KEY}
    if GATEWAY_REDIS:
        env["KEYPLANE_REDIS_URL"] = f"redis://127.0.0.1:{REDIS_PORT}/0"
        env["KEYPLANE_REDIS_PREFIX"] = GATEWAY_REDIS_PREFIX
    return env


def gateway_config(mock: Mock, dead_port: int, extra: str = "") -> str:
    """The keyplane.toml of the shared servers."""
    return f"""\
upstream_timeout_secs = {UPSTREAM_TIMEOUT_SECS}

[[upstreams]]
name = "unreachable"
url = "http://127.0.0.1:{dead_port}/v1"
models = ["{UNREACHABLE_MODEL_PREFIX}*"]

[[upstreams]]
name = "routed"
url = "{mock.base_url}"
api_key_env = "{ROUTED_UPSTREAM_KEY_ENV}"
models = ["{ROUTED_MODEL_PREFIX}*"]

[[models]]
name = "{PRICEY_MODEL}"
input_price = {PRICEY_PRICE}
output_price = {PRICEY_PRICE}
{extra}"""


def mock_completion_text(n: int) -> str:
    """The mock's generated text of `n` (<= 16) words."""
    words = (
        "mock reply from the keyplane mock upstream one two three four five six seven eight nine"
    ).split()
    return " ".join(words[:n])


class WebhookReceiver:
    """A tiny HTTP server recording every POST (headers and raw body); answers 200."""

    def __init__(self):
        import http.server

        received: list[dict] = []
        self.received = received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                received.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                        "at": time.monotonic(),
                    }
                )
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/keyplane"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------------------------------------
# Assertions
# ---------------------------------------------------------------------------------------------

ANY: Any = object()


def assert_error(
    resp: Response,
    status: int,
    *,
    param: Any = ANY,
    code: Any = ANY,
    type: Any = "invalid_request_error",
    contains: str | None = None,
    excludes: tuple[str, ...] = (),
) -> dict:
    """Checks OpenAI's error envelope `{"error": {"message", "type", "param", "code"}}`."""
    assert resp.status == status, f"expected {status}, got {resp!r}"
    ctype = resp.headers.get("content-type", "")
    assert ctype.startswith("application/json"), f"error is not JSON: {resp!r}"
    body = resp.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err, dict), body
    assert set(err) == {"message", "type", "param", "code"}, f"envelope keys: {sorted(err)}"
    assert isinstance(err["message"], str) and err["message"].strip(), err
    assert isinstance(err["type"], str) and err["type"], err
    assert err["param"] is None or isinstance(err["param"], str), err
    assert err["code"] is None or isinstance(err["code"], str), err
    if type is not ANY:
        assert err["type"] == type, err
    if param is not ANY:
        assert err["param"] == param, err
    if code is not ANY:
        assert err["code"] == code, err
    if contains is not None:
        assert contains in err["message"], err
    for bad in excludes:
        assert bad not in resp.text, f"{bad!r} leaked into {resp!r}"
    return err


def assert_list_envelope(body: Any) -> list:
    """`{"object":"list","data":[…],"first_id","last_id","has_more"}` with consistent ids."""
    assert isinstance(body, dict), body
    assert body.get("object") == "list", body
    data = body.get("data")
    assert isinstance(data, list), body
    assert type(body.get("has_more")) is bool, f"has_more must be a JSON boolean: {body}"
    assert "first_id" in body and "last_id" in body, body
    if data:
        assert body["first_id"] == data[0]["id"], body
        assert body["last_id"] == data[-1]["id"], body
    else:
        assert body["first_id"] is None and body["last_id"] is None, body
        assert body["has_more"] is False, body
    return data


def walk(server: Server, path: str, *, limit: int, query: str = "", between=None) -> list[dict]:
    """Pages through a list by hand with `after=<last_id>`; checks every envelope.

    `between(page_number)` runs after each page (used to insert rows mid-walk).
    """
    items: list[dict] = []
    after = None
    for page_no in range(10_000):
        qs = f"limit={limit}" + (f"&{query}" if query else "")
        if after is not None:
            qs += f"&after={urllib.parse.quote(after, safe='')}"
        body = server.ok("GET", f"{path}?{qs}")
        data = assert_list_envelope(body)
        assert len(data) <= limit, body
        items.extend(data)
        if between is not None:
            between(page_no)
        if not body["has_more"]:
            assert len(data) <= limit
            # The page after the last item is empty.
            if data:
                tail = server.ok(
                    "GET",
                    f"{path}?limit={limit}&after={urllib.parse.quote(data[-1]['id'], safe='')}"
                    + (f"&{query}" if query else ""),
                )
                if between is None:
                    assert assert_list_envelope(tail) == [], tail
            return items
        assert len(data) == limit, f"has_more with a short page: {body}"
        after = body["last_id"]
    raise AssertionError("pagination did not end")


def poll(fn, *, timeout: float = 3.5, interval: float = 0.1):
    """Calls `fn` until it returns a truthy value or `timeout` passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Gateway helpers
# ---------------------------------------------------------------------------------------------

# `x-ratelimit-reset-*`: Go-style durations as OpenAI sends them (`12ms`, `1s`, `6m0s`, `1.5s`).
RESET_RE = re.compile(r"\d+ms|(\d+h)?(\d+m)?\d+(\.\d+)?s")
RATE_HEADERS = tuple(
    f"x-ratelimit-{what}-{unit}"
    for unit in ("requests", "tokens")
    for what in ("limit", "remaining", "reset")
)


def assert_rate_headers(headers: Any, *, limit_requests: int | None = None) -> dict[str, str]:
    """All six `x-ratelimit-*` headers, integers and durations well formed; returns them."""
    got = {name: headers.get(name) for name in RATE_HEADERS}
    assert all(v is not None for v in got.values()), f"missing rate-limit headers: {got}"
    for unit in ("requests", "tokens"):
        limit = int(got[f"x-ratelimit-limit-{unit}"])
        remaining = int(got[f"x-ratelimit-remaining-{unit}"])
        assert 0 <= remaining <= limit, got
        assert RESET_RE.fullmatch(got[f"x-ratelimit-reset-{unit}"]), got
    if limit_requests is not None:
        assert int(got["x-ratelimit-limit-requests"]) == limit_requests, got
    return got


def error_of(exc: BaseException) -> Response:
    """The HTTP response behind an SDK `APIStatusError`, for `assert_error`."""
    assert isinstance(exc, openai.APIStatusError), repr(exc)
    r = exc.response
    return Response(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content)


def sdk_error(call, *args: Any, **kw: Any) -> Response:
    """Runs an SDK call that must fail with an HTTP error; returns that response."""
    try:
        result = call(*args, **kw)
    except openai.APIStatusError as e:
        return error_of(e)
    raise AssertionError(f"expected an HTTP error, got {result!r}")


def chat_stream_raw(
    port: int,
    key: str,
    body: dict,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = HTTP_TIMEOUT,
) -> tuple[socket.socket, http.client.HTTPResponse]:
    """Starts a streamed POST /v1/chat/completions on its own connection; the caller reads the
    response (e.g. one event) and closes the socket when it wants to."""
    data = json.dumps(body).encode()
    head = [
        "POST /v1/chat/completions HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Authorization: Bearer {key}",
        "Content-Type: application/json",
        "Accept: text/event-stream",
        f"Content-Length: {len(data)}",
    ]
    for name, value in (headers or {}).items():
        head.append(f"{name}: {value}")
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + data)
    resp = http.client.HTTPResponse(sock, method="POST")
    resp.begin()
    return sock, resp


USAGE_COUNTERS = ("num_model_requests", "input_tokens", "output_tokens", "input_cached_tokens")


def usage_totals(
    admin: openai.OpenAI,
    family: str,
    *,
    start: int,
    group_by: tuple[str, ...] = ("api_key_id", "model"),
    **filters: Any,
) -> dict[tuple, dict[str, int]]:
    """`GET /v1/organization/usage/{family}` (through the SDK) in 1-minute buckets from
    `start`, summed over every bucket per group: {(group values…): {counter: total}}."""
    fn = getattr(admin.admin.organization.usage, family)
    out: dict[tuple, dict[str, int]] = {}
    page = None
    while True:
        resp = fn(
            start_time=start,
            bucket_width="1m",
            group_by=list(group_by),
            **({"page": page} if page else {}),
            **filters,
        )
        for bucket in resp.data:
            for r in bucket.results:
                key = tuple(getattr(r, g) for g in group_by)
                totals = out.setdefault(key, {})
                for counter in USAGE_COUNTERS:
                    value = getattr(r, counter, None)
                    if value is not None:
                        totals[counter] = totals.get(counter, 0) + value
        if not resp.has_more:
            return out
        page = resp.next_page


def poll_equal(fn, expected, *, timeout: float = 5.0, interval: float = 0.2):
    """Calls `fn` until it returns `expected` or `timeout` passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value == expected or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def costs_total(admin: openai.OpenAI, *, start: int, project_id: str) -> float:
    """The summed `amount.value` of `project_id` from `GET /v1/organization/costs`."""
    resp = admin.admin.organization.usage.costs(
        start_time=start, group_by=["project_id"], project_ids=[project_id]
    )
    total = 0.0
    for bucket in resp.data:
        for r in bucket.results:
            assert r.project_id == project_id, r
            assert r.amount.currency == "usd", r
            total += r.amount.value
    return total


def assert_no_client_secret(mock: Mock, secrets: set[str]) -> None:
    """No recorded upstream request carries a Keyplane key (or its secret part) anywhere."""
    for req in mock.requests():
        blob = req["body"] + "\n" + "\n".join(f"{k}: {v}" for k, v in req["headers"].items())
        blob += "\n" + req["path"] + "?" + (req["query"] or "")
        for value in secrets:
            if not any(value.startswith(p) for p in KEY_PREFIXES.values()):
                continue
            for fragment in secret_fragments(value):
                assert fragment not in blob, f"a Keyplane key reached the upstream: {req}"
        for prefix in KEY_PREFIXES.values():
            assert prefix not in blob, f"a Keyplane key reached the upstream: {req}"


# ---------------------------------------------------------------------------------------------
# Redis: the shared counters of a cluster of instances, and a proxy that can cut them off
# ---------------------------------------------------------------------------------------------



def redis_command(*args: str | int, port: int = REDIS_PORT) -> Any:
    """One Redis command over RESP (no client library): returns ints, strings (bytes decoded),
    None or lists."""
    parts = [str(a).encode() for a in args]
    req = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
    with socket.create_connection((REDIS_HOST, port), timeout=5) as sock:
        sock.sendall(req)
        f = sock.makefile("rb")

        def read() -> Any:
            line = f.readline()
            kind, rest = line[:1], line[1:-2]
            if kind == b"+":
                return rest.decode()
            if kind == b"-":
                raise RuntimeError(f"Redis error: {rest.decode()}")
            if kind == b":":
                return int(rest)
            if kind == b"$":
                n = int(rest)
                if n < 0:
                    return None
                data = f.read(n + 2)[:-2]
                return data.decode()
            if kind == b"*":
                n = int(rest)
                return None if n < 0 else [read() for _ in range(n)]
            raise RuntimeError(f"unexpected Redis reply {line!r}")

        return read()


def redis_delete_prefix(prefix: str) -> None:
    """Deletes the keys of one test's namespace (never FLUSHALL: Redis is shared)."""
    cursor = "0"
    while True:
        cursor, keys = redis_command("SCAN", cursor, "MATCH", prefix + ":*", "COUNT", 1000)
        if keys:
            redis_command("DEL", *keys)
        if cursor == "0":
            return


def metrics(port: int) -> dict[str, float]:
    """`GET /metrics` (Prometheus text) as {name: value}."""
    resp = http_request(port, "GET", "/metrics")
    assert resp.status == 200, resp
    out = {}
    for line in resp.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out
