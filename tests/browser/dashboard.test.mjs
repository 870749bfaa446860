// The dashboard in a real browser: the flows of the dashboard issue and its security tests.
// Run with `node --test` (scripts/test does, after the Python suite).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startMock, startServer, launchBrowser, screenshot, signIn, chat, eventually, serverLog,
  OWNER_EMAIL,
} from "./harness.mjs";

let mock;
let browser;

before(async () => {
  mock = await startMock();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  mock?.close();
});

/** A fresh browser context (its own cookies) with a page that fails the test on any alert. */
async function newPage(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  const page = await context.newPage();
  page.on("dialog", async (dialog) => {
    if (dialog.type() === "alert") throw new Error(`unexpected alert: ${dialog.message()}`);
    await dialog.accept();
  });
  return { context, page };
}

async function createProject(page, base, name) {
  await page.goto(`${base}/projects`);
  await page.getByLabel("New project name").fill(name);
  await page.getByRole("button", { name: "Create project" }).click();
  await page.waitForURL(/\/projects\/proj_[A-Za-z0-9]+$/);
  return page.url().split("/projects/")[1];
}

/** Creates a key from the project page and returns its secret (read once from the page). */
async function createKey(page, name, { permissions = "All" } = {}) {
  await page.getByText("Create new secret key").click();
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByLabel(permissions, { exact: true }).check();
  await page.getByRole("button", { name: "Create secret key" }).click();
  await page.getByText("You won't see it again").waitFor();
  return page.locator("#secret").inputValue();
}

test("owner: projects, a key used through the gateway, usage, revoke, invite, audit log", async () => {
  const server = await startServer("journey", { mock });
  const { base } = server;
  const { context, page } = await newPage();
  try {
    await page.goto(`${base}/`);
    await page.waitForURL(`${base}/login`);
    await screenshot(page, "01-sign-in");
    await signIn(page, base);
    await page.getByText("No projects yet").waitFor();
    await screenshot(page, "02-projects-empty");

    const projectId = await createProject(page, base, "Web app");
    await page.getByText("No API keys yet — create one").waitFor();

    const secret = await createKey(page, "ci key");
    assert.match(secret, /^sk-proj-[0-9A-Za-z]{58}$/);
    await screenshot(page, "03-key-created");
    await page.getByRole("link", { name: "Done" }).click();
    const row = page.locator("tr", { hasText: "ci key" });
    await row.waitFor();
    assert.equal((await row.locator(".last-used").innerText()).trim(), "Never");
    assert.ok(!(await page.content()).includes(secret), "the secret is shown once only");

    // A second key that stays live (the reader sees it later, without buttons).
    await createKey(page, "owner's other key");
    await page.goto(`${base}/projects/${projectId}`);

    assert.equal(await chat(base, secret), 200);
    await eventually(page, async () => (await row.locator(".last-used").innerText()).trim() !== "Never", "last used");
    await screenshot(page, "04-keys-used");

    // Edit a key's name and permissions.
    await page.locator("tr", { hasText: "owner's other key" }).getByRole("link", { name: "Edit" }).click();
    await page.getByLabel("Name", { exact: true }).fill("reporting key");
    await page.getByLabel("Restricted", { exact: true }).check();
    await page.getByLabel("Models: read").check();
    await page.getByLabel("Usage: read").check();
    await screenshot(page, "04b-key-edit");
    await page.getByRole("button", { name: "Save" }).click();
    await page.waitForURL(`${base}/projects/${projectId}`);
    const edited = page.locator("tr", { hasText: "reporting key" });
    assert.equal(await edited.locator("td[data-label=Permissions]").innerText(), "Restricted");

    await page.getByRole("link", { name: "Usage" }).click();
    await eventually(page, async () => Number(await page.locator(".chart-total").first().innerText()) >= 1, "usage chart");
    assert.ok(await page.locator("figure.chart rect").count() > 0);
    await page.locator("table.by-model").getByText("gpt-4o-mini").waitFor();
    await page.getByRole("link", { name: "Day", exact: true }).click();
    await page.waitForURL(/range=day/);
    assert.ok(Number(await page.locator(".chart-total").first().innerText()) >= 1);
    await screenshot(page, "05-usage");

    await page.getByRole("link", { name: "Limits" }).click();
    await page.getByLabel("Limit in US dollars (empty: no limit)").fill("250");
    await page.getByRole("button", { name: "Save spend limit" }).click();
    await page.getByText("Requests are refused once spending reaches").waitFor();
    await screenshot(page, "06-limits");

    // Revoke (the confirmation is accepted) and see the gateway refuse the key.
    await page.getByRole("link", { name: "API keys" }).click();
    await page.locator("tr", { hasText: "ci key" }).getByRole("button", { name: "Revoke" }).click();
    await page.locator("tr", { hasText: "ci key" }).waitFor({ state: "detached" });
    assert.equal(await chat(base, secret), 401);

    // Invite a reader into the project; they sign up through the link.
    await page.getByRole("link", { name: "Members", exact: true }).click();
    await page.getByLabel("Email").fill("reader@keyplane.test");
    await page.getByLabel("Organization role").selectOption("reader");
    await page.getByLabel("Add to project (optional)").selectOption({ label: "Web app" });
    await page.getByRole("button", { name: "Send invite" }).click();
    const link = await page.locator("#invite-link").inputValue();
    assert.match(link, /\/invite\/kpinv_/);
    await screenshot(page, "07-members-invite");

    const reader = await newPage();
    try {
      await reader.page.goto(link);
      await reader.page.getByLabel("Your name").fill("Rita Reader");
      await reader.page.getByLabel("Password", { exact: true }).fill("reader password 123");
      await reader.page.getByLabel("Password again").fill("reader password 123");
      await screenshot(reader.page, "08-sign-up");
      await reader.page.getByRole("button", { name: /Create account/ }).click();
      await reader.page.waitForURL(`${base}/projects`);
      assert.equal(await reader.page.getByLabel("New project name").count(), 0, "readers create no projects");
      await reader.page.getByRole("link", { name: "Web app" }).click();
      const ownerRow = reader.page.locator("tr", { hasText: "reporting key" });
      await ownerRow.waitFor();
      assert.equal(await ownerRow.getByRole("button", { name: "Revoke" }).count(), 0);
      assert.equal(await reader.page.getByText("Project settings").count(), 0);
      await screenshot(reader.page, "09-reader-keys");
      // The server refuses anyway: a crafted revoke of the owner's key.
      const ownerKeyId = await ownerRow.getAttribute("data-key-id");
      const status = await reader.page.evaluate(async ([p, k]) => {
        const r = await window.Keyplane.post(`/projects/${p}/keys/${k}/revoke`, {});
        return r.status;
      }, [projectId, ownerKeyId]);
      assert.equal(status, 403);
      await reader.page.goto(`${base}/projects/${projectId}/limits`);
      assert.equal(await reader.page.getByRole("button", { name: "Save spend limit" }).count(), 0);
      await reader.page.goto(`${base}/members`);
      assert.equal(await reader.page.getByRole("button", { name: "Send invite" }).count(), 0);
      assert.equal(await reader.page.getByRole("button", { name: "Remove" }).count(), 0);
    } finally {
      await reader.context.close();
    }

    // The audit log shows all of it, newest first, and filters by type.
    await page.getByRole("link", { name: "Audit log" }).click();
    const types = await page.locator("td.event-type").allInnerTexts();
    for (const t of ["login.succeeded", "project.created", "api_key.created", "api_key.updated", "api_key.deleted",
      "project.updated", "invite.sent", "invite.accepted"]) {
      assert.ok(types.includes(t), `${t} in ${types}`);
    }
    // Newest first: the reader's sign-in after accepting, then the acceptance, then the invite.
    assert.equal(types[0], "login.succeeded");
    assert.ok(types.indexOf("invite.accepted") < types.indexOf("invite.sent"));
    await screenshot(page, "10-audit-log");
    await page.getByLabel("Event type").selectOption("api_key.deleted");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(/event_type=api_key.deleted/);
    assert.deepEqual(await page.locator("td.event-type").allInnerTexts(), ["api_key.deleted"]);
    await page.getByLabel("Actor (email or id)").fill(OWNER_EMAIL);
    await page.getByRole("button", { name: "Filter" }).click();
    assert.deepEqual(await page.locator("td.event-type").allInnerTexts(), ["api_key.deleted"]);

    // Phone width: the sidebar collapses behind the menu button.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${base}/projects/${projectId}`);
    assert.ok(await page.getByRole("button", { name: "Menu" }).isVisible());
    assert.ok(!(await page.locator("#sidebar").isVisible()));
    await screenshot(page, "11-keys-phone");
    await page.getByRole("button", { name: "Menu" }).click();
    assert.ok(await page.locator("#sidebar").isVisible());

    // Nothing secret reached the log.
    const log = serverLog(server);
    assert.ok(!log.includes(secret), "key in the server log");
    assert.ok(!log.includes(link.split("/invite/")[1]), "invite token in the server log");
  } finally {
    await context.close();
    await server.close();
  }
});

test("security: CSRF, escaping, signed-out cookies, another project's key", async () => {
  const server = await startServer("security", { mock });
  const { base } = server;
  const { context, page } = await newPage();
  try {
    await signIn(page, base);
    // A form without the CSRF token is refused.
    const forged = await page.request.post(`${base}/projects`, { form: { name: "forged" } });
    assert.equal(forged.status(), 403);
    assert.match(await forged.text(), /did not come from this dashboard/);

    // A key name with markup renders as text (no alert: newPage fails on one).
    const mine = await createProject(page, base, "Mine");
    await createKey(page, "<script>alert(1)</script>");
    await page.getByRole("link", { name: "Done" }).click();
    const cell = page.locator("td.key-name").first();
    assert.equal(await cell.innerText(), "<script>alert(1)</script>");
    await screenshot(page, "12-escaped-name");

    // Another project's key id cannot be revoked through this project's form.
    const theirs = await createProject(page, base, "Theirs");
    await createKey(page, "their key");
    await page.goto(`${base}/projects/${theirs}`);
    const theirKeyId = await page.locator("tr", { hasText: "their key" }).getAttribute("data-key-id");
    await page.goto(`${base}/projects/${mine}`);
    const csrf = await page.locator('meta[name="csrf-token"]').getAttribute("content");
    const crafted = await page.request.post(`${base}/projects/${mine}/keys/${theirKeyId}/revoke`, {
      form: { csrf_token: csrf },
    });
    assert.equal(crafted.status(), 404);
    await page.goto(`${base}/projects/${theirs}`);
    await page.locator("tr", { hasText: "their key" }).waitFor();

    // A session cookie from a signed-out session is refused.
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === "keyplane_session");
    assert.ok(session && session.httpOnly && session.sameSite === "Lax");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(`${base}/login`);
    const replay = await browser.newContext();
    try {
      await replay.addCookies([session]);
      const p = await replay.newPage();
      await p.goto(`${base}/projects`);
      assert.equal(new URL(p.url()).pathname, "/login");
      const post = await p.request.post(`${base}/projects`, { form: { name: "x", csrf_token: csrf } });
      assert.equal(post.status(), 401);
    } finally {
      await replay.close();
    }
  } finally {
    await context.close();
    await server.close();
  }
});

test("setup link: the first owner sets a password and is signed in", async () => {
  const server = await startServer("setup", { mock, password: null });
  const { base } = server;
  const { context, page } = await newPage();
  try {
    assert.ok(server.setupPath, "init printed a setup link");
    await page.goto(`${base}${server.setupPath}`);
    await page.getByRole("heading", { name: "Set up your account" }).waitFor();
    await page.getByLabel("Password", { exact: true }).fill("owner password 123");
    await page.getByLabel("Password again").fill("a different one 123");
    await page.getByRole("button", { name: /Set password/ }).click();
    await page.getByText("The two passwords differ").waitFor();
    await page.getByLabel("Password", { exact: true }).fill("owner password 123");
    await page.getByLabel("Password again").fill("owner password 123");
    await page.getByRole("button", { name: /Set password/ }).click();
    await page.waitForURL(`${base}/projects`);
    await page.getByText("No projects yet — create one above").waitFor();
    // The link works once.
    await page.goto(`${base}${server.setupPath}`);
    await page.getByText("This link has been used already").waitFor();
    // Wrong passwords are refused in plain words.
    const other = await newPage();
    try {
      await other.page.goto(`${base}/login`);
      await other.page.getByLabel("Email").fill(OWNER_EMAIL);
      await other.page.getByLabel("Password").fill("not the password");
      await other.page.getByRole("button", { name: "Sign in" }).click();
      await other.page.getByText("That email and password do not match").waitFor();
      await screenshot(other.page, "13-sign-in-error");
    } finally {
      await other.context.close();
    }
  } finally {
    await context.close();
    await server.close();
  }
});
