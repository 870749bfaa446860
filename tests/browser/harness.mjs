// Test harness for the dashboard: a real `keyplane serve` on a fresh SQLite file, the mock
// upstream as its provider, and Debian's Chromium driven by playwright-core.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, createWriteStream, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(HERE, "..", "..");
const BIN = process.env.KEYPLANE_BIN || join(REPO, "target", "debug", "keyplane");
const MOCK_BIN = process.env.KEYPLANE_MOCK_BIN || join(REPO, "target", "debug", "keyplane-mock-upstream");
export const OUTPUT = join(REPO, "test-output");
export const SCREENSHOTS = join(OUTPUT, "screenshots");
export const OWNER_EMAIL = "owner@keyplane.test";
export const OWNER_PASSWORD = "correct horse battery staple";
const STARTUP_MS = 30_000;

mkdirSync(SCREENSHOTS, { recursive: true });

/** The environment of a child: none of the caller's KEYPLANE_* settings leak in. */
function childEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("KEYPLANE_")) env[k] = v;
  }
  return { ...env, KEYPLANE_LOG_FORMAT: "json", ...extra };
}

/** Resolves with the first line of `stream` that `match` accepts (its return value). */
function waitForLine(proc, stream, match, what) {
  return new Promise((resolvePromise, reject) => {
    let buffer = "";
    const timer = setTimeout(() => reject(new Error(`${what} did not start in time:\n${buffer}`)), STARTUP_MS);
    stream.on("data", (chunk) => {
      buffer += chunk.toString();
      for (const line of buffer.split("\n")) {
        const found = match(line);
        if (found) {
          clearTimeout(timer);
          resolvePromise(found);
          return;
        }
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}:\n${buffer}`));
    });
  });
}

/** The OpenAI-compatible fake provider. */
export async function startMock() {
  const proc = spawn(MOCK_BIN, ["--listen", "127.0.0.1:0"], { env: childEnv({}), stdio: ["ignore", "pipe", "ignore"] });
  const port = await waitForLine(proc, proc.stdout, (line) => {
    const m = line.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
    return m && Number(m[1]);
  }, "mock upstream");
  return { proc, url: `http://127.0.0.1:${port}/v1`, close: () => proc.kill("SIGTERM") };
}

/**
 * `keyplane init` + `keyplane serve` on a fresh SQLite file in a temp dir. With
 * `password: null`, init prints the owner's one-time setup link instead (returned as
 * `setupPath`).
 */
export async function startServer(label, { mock, password = OWNER_PASSWORD } = {}) {
  const dir = mkdtempSync(join(tmpdir(), `kp-browser-${label}-`));
  const db = `sqlite://${join(dir, "keyplane.db")}`;
  const initEnv = password ? { KEYPLANE_OWNER_PASSWORD: password } : {};
  const init = spawnSync(BIN, ["init", "--database-url", db, "--org-name", "Browser Test Org", "--owner-email", OWNER_EMAIL], {
    env: childEnv(initEnv),
    encoding: "utf8",
  });
  if (init.status !== 0) throw new Error(`keyplane init failed: ${init.stderr}`);
  const adminKey = init.stdout.trim();
  const setup = init.stderr.match(/\/setup\/([A-Za-z0-9_]+)/);
  const upstream = mock ? { KEYPLANE_UPSTREAM_URL: mock.url, KEYPLANE_UPSTREAM_API_KEY: "sk-upstream-test" } : {};
  const log = createWriteStream(join(OUTPUT, `browser-${label}.stderr.log`));
  const proc = spawn(BIN, ["serve", "--listen", "127.0.0.1:0", "--database-url", db], {
    env: childEnv(upstream),
    stdio: ["ignore", "ignore", "pipe"],
  });
  proc.stderr.pipe(log);
  const port = await waitForLine(proc, proc.stderr, (line) => {
    try {
      const rec = JSON.parse(line);
      const fields = rec.fields || {};
      if ((fields.message || rec.message) === "keyplane serving") {
        return Number(String(fields.listen || rec.listen).split(":").pop());
      }
    } catch {
      // not a JSON line
    }
    return null;
  }, "keyplane serve");
  const base = `http://127.0.0.1:${port}`;
  return {
    base,
    adminKey,
    setupPath: setup ? `/setup/${setup[1]}` : null,
    logPath: join(OUTPUT, `browser-${label}.stderr.log`),
    async close() {
      proc.kill("SIGTERM");
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.on("exit", r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox"],
  });
}

export async function screenshot(page, name) {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

export async function signIn(page, base, email = OWNER_EMAIL, password = OWNER_PASSWORD) {
  await page.goto(`${base}/login`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${base}/projects`);
}

/** One chat completion through the gateway with `key`; resolves with the HTTP status. */
export async function chat(base, key) {
  const resp = await fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hello from the browser test" }] }),
  });
  await resp.arrayBuffer();
  return resp.status;
}

/** Reloads `page` until `check` holds (the server writes usage and last-use in 1 s batches). */
export async function eventually(page, check, what, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
    await page.reload();
  }
}

export function serverLog(server) {
  return readFileSync(server.logPath, "utf8");
}
