// The operator status page (/status on the API port) in Debian's Chromium:
// it asks for the api_token, shows a live channel of two sora-js-sdk
// clients, switches the mode through the API, and follows a SIGTERM drain
// as the clients leave. A screenshot of the drain is written to
// test-results/status-page.png (docs/status-page.png is one of these).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PATIENCE, startHayate, startPageServer, launchBrowser, openClient, connect, disconnect, waitFor, withTimeout } from "./harness.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const token = "page-tok-51";
let hayate, pages, browser;

before(async () => {
  hayate = await startHayate(["--api_token=" + token, "--drain_timeout=2 min"]);
  pages = await startPageServer();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (pages) await pages.close();
  if (hayate && hayate.proc.exitCode === null) hayate.proc.kill("SIGKILL");
});

async function callAPI(base, target, body) {
  const res = await fetch(base + "/", {
    method: "POST",
    headers: { "x-sora-target": target, authorization: "Bearer " + token },
    body: body === undefined ? "" : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${target}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

test("status page: live channel, mode switch, drain progress", async () => {
  const m = hayate.log().match(/api=(\S+)/);
  const base = "http://" + m[1];
  const channel = "ops-live";
  const a = await openClient(browser, pages.url);
  const b = await openClient(browser, pages.url);
  for (const p of [a, b]) {
    const r = await connect(p, { url: hayate.url, channel, role: "sendrecv" });
    assert.ok(r.ok, `client connects: ${JSON.stringify(r)}`);
  }

  const ctx = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await ctx.newPage();
  const pageErrors = [];
  page.on("pageerror", (err) => pageErrors.push(err.message));
  await page.goto(base + "/status?refresh=0.5");

  // Without the token the API answers 401 and the page asks for it.
  await page.waitForSelector("#token-form:not([hidden])", { timeout: PATIENCE });
  await page.fill("#token", token);
  await page.click("#token-form button[type=submit]");
  await page.waitForSelector("body[data-loaded=true]", { timeout: PATIENCE });
  const stored = await page.evaluate(() => [sessionStorage.getItem("hayate-api-token"), localStorage.length]);
  assert.deepEqual(stored, [token, 0], "the token is kept in sessionStorage only");
  assert.equal(await page.isHidden("#token-form"), true);

  // The live channel with its two connections.
  const row = `#channels tr[data-channel="${channel}"]`;
  await page.waitForSelector(row, { timeout: PATIENCE });
  await waitFor("two connections shown", PATIENCE, async () => {
    const n = await page.textContent(`${row} td.count`);
    return { ok: n === "2", n };
  });
  assert.equal(await page.textContent(`${row} td:nth-child(3)`), "2 sendrecv");
  assert.equal(await page.locator("#connections-table tbody tr").count(), 2);
  assert.equal(await page.textContent("#mode"), "normal");

  // Switching the mode from the page changes GetMode.
  await page.click('button[data-mode="block_new_session"]');
  await waitFor("GetMode block_new_session", PATIENCE, async () => {
    const r = await callAPI(base, "Sora_20211215.GetMode");
    return { ok: r.mode === "block_new_session", r };
  });
  await page.waitForFunction(() => document.getElementById("mode").textContent === "block_new_session", null, { timeout: PATIENCE });
  assert.equal(await page.textContent("#ready"), "not ready");
  await page.click('button[data-mode="normal"]');
  await waitFor("GetMode normal", PATIENCE, async () => {
    const r = await callAPI(base, "Sora_20211215.GetMode");
    return { ok: r.mode === "normal", r };
  });
  await page.waitForFunction(() => document.getElementById("ready").textContent === "ready", null, { timeout: PATIENCE });

  // SIGTERM: the page shows the shutdown drain, and its progress falls as
  // the clients leave.
  const exited = new Promise((resolve) => hayate.proc.on("exit", (code) => resolve(code)));
  hayate.proc.kill("SIGTERM");
  await page.waitForSelector('#drain[data-active="true"]', { timeout: PATIENCE });
  assert.equal(await page.textContent("#drain-reason"), "shutdown");
  assert.equal(await page.textContent("#drain-left"), "2");
  assert.equal(await page.textContent("#drain-start-connections"), "2");
  assert.equal(await page.evaluate(() => document.getElementById("drain-bar").value), 0);
  assert.equal(await page.isVisible("#drain-deadline-line"), true);

  await disconnect(a);
  await page.waitForFunction(() => document.getElementById("drain-left").textContent === "1", null, { timeout: PATIENCE });
  assert.equal(await page.evaluate(() => document.getElementById("drain-bar").value), 0.5);
  assert.equal(await page.textContent(`${row} td.count`), "1");
  await mkdir(path.join(here, "test-results"), { recursive: true });
  await page.screenshot({ path: path.join(here, "test-results", "status-page.png"), fullPage: true });

  await disconnect(b);
  assert.equal(await withTimeout(exited, PATIENCE, "hayate exits after the drain"), 0);
  assert.deepEqual(pageErrors, []);
  await ctx.close();
});
