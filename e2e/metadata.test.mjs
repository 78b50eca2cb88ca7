// End-to-end: Sora's signaling notify metadata extension with the
// unmodified sora-js-sdk@2026.1.0 in Debian's Chromium against a real
// Hayate node, on loopback only. A client changes its own object over the
// rpc DataChannel with the SDK's rpc(); everyone in the channel (the
// caller too) gets the push through the SDK's "push" event; a client that
// joins later reads everyone's object in its connection.created notify;
// the application server reads and changes it through the API.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { PATIENCE, startEnv, stopEnv, openClient, connect, waitFor, disconnect } from "./harness.mjs";

const env = {};
let hayate, pages, browser;

before(async () => {
  ({ hayate, pages, browser } = await startEnv(env, ["--data_channel_rpc=true", "--signaling_notify_metadata_ext=true"]));
});

after(async () => {
  assert.equal(await stopEnv(env), 0, "hayate exits 0 on SIGTERM");
});

// join connects a recvonly client with DataChannel signaling and records
// the pushes the SDK delivers.
async function join(channel, name) {
  const page = await openClient(browser, pages.url);
  await page.evaluate(() => { window.pushes = []; });
  const r = await connect(page, {
    url: hayate.url, channel, role: "recvonly",
    options: { dataChannelSignaling: true, signalingNotifyMetadata: { name } },
  });
  assert.ok(r.ok, `${name} connects: ${JSON.stringify(r)}`);
  await page.evaluate(() => window.conn.on("push", (m) => window.pushes.push(m)));
  return { page, id: r.connectionId };
}

const pushes = (p) => p.evaluate(() => JSON.parse(JSON.stringify(window.pushes)));

test("signaling notify metadata extension: rpc() changes a client's object, the push reaches everyone, a newcomer's notify carries it, the API reads it", async () => {
  const channel = "e2e-metadata";
  const a = await join(channel, "alice");
  const b = await join(channel, "bob");
  // The rpc DataChannel opens with the others after the switch.
  const rpc = (method, params) => a.page.evaluate(([m, p]) => window.conn.rpc(m, p, { timeout: 10000 }), [method, params]);
  await waitFor("alice's rpc() answers", PATIENCE, async () => {
    try {
      const got = await rpc("2025.2.0/PutSignalingNotifyMetadataItem", { key: "mic", value: "muted", push: true });
      return { ok: JSON.stringify(got) === JSON.stringify({ mic: "muted" }), got };
    } catch (e) {
      return { ok: false, error: String(e) };
    }
  });
  const want = { type: "signaling_notify_metadata_ext", action: "PutMetadataItem", connection_id: a.id, key: "mic", value: "muted" };
  for (const [who, c] of [["alice", a], ["bob", b]]) {
    await waitFor(`${who} gets the push`, PATIENCE, async () => {
      const got = await pushes(c.page);
      return { ok: got.some((m) => m.type === "push" && JSON.stringify(m.data) === JSON.stringify(want)), got };
    });
  }

  // A newcomer learns alice's object (and her signaling_notify_metadata,
  // as authn_metadata) from its own connection.created.
  const c = await join(channel, "carol");
  await waitFor("carol's connection.created lists alice's object", PATIENCE, async () => {
    const notes = await c.page.evaluate(() => JSON.parse(JSON.stringify(window.events.notifyMessages)));
    const own = notes.find((n) => n.event_type === "connection.created" && n.connection_id === c.id);
    const entry = own && (own.data || []).find((e) => e.connection_id === a.id);
    return { ok: !!entry && JSON.stringify(entry.metadata) === `{"mic":"muted"}` && JSON.stringify(entry.authn_metadata) === `{"name":"alice"}`, own };
  });

  // The application server reads it and changes bob's through the API.
  const list = await hayate.api("Sora_20201124.ListSignalingNotifyMetadata", { channel_id: channel });
  assert.deepEqual(list.find((e) => e.connection_id === a.id).metadata, { mic: "muted" });
  assert.deepEqual(await hayate.api("Sora_20201124.PutSignalingNotifyMetadata", { channel_id: channel, connection_id: b.id, metadata: { hand: "up" }, push: true }), { hand: "up" });
  await waitFor("carol gets the API's push", PATIENCE, async () => {
    const got = await pushes(c.page);
    return { ok: got.some((m) => m.data && m.data.action === "PutMetadata" && m.data.connection_id === b.id), got };
  });

  for (const x of [a, b, c]) {
    await disconnect(x.page);
    await x.page.context().close();
  }
});
