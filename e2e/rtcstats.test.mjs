// End-to-end: the RTC stats API with the unmodified sora-js-sdk@2026.1.0 in
// Debian's Chromium against a real Hayate node, on loopback only. The node
// asks every 300 ms: on the WebSocket ({"type":"ping","stats":true}) and,
// once a client switched to DataChannel signaling, on its `stats`
// DataChannel ({"type":"req-stats"}); the SDK's getStats() reports come
// back through ListRtcStats and GetRtcStats as the browser made them.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { PATIENCE, startEnv, stopEnv, openClient, connect, waitFor } from "./harness.mjs";

const env = {};
let hayate, pages, browser;

before(async () => {
  ({ hayate, pages, browser } = await startEnv(env, ["--websocket_stats_timer_interval=300ms", "--data_channel_stats_timer_interval=300ms"]));
});

after(async () => {
  assert.equal(await stopEnv(env), 0, "hayate exits 0 on SIGTERM");
});

test("the SDK's getStats() reports over the WebSocket and the stats DataChannel show up in ListRtcStats and GetRtcStats", async () => {
  const channel = "e2e-rtc-stats";
  const [ws, dc] = [await openClient(browser, pages.url), await openClient(browser, pages.url)];
  const a = await connect(ws, { url: hayate.url, channel, role: "sendrecv" });
  assert.ok(a.ok, `WebSocket client: ${JSON.stringify(a)}`);
  const b = await connect(dc, {
    url: hayate.url, channel, role: "sendrecv",
    options: { dataChannelSignaling: true, ignoreDisconnectWebSocket: true },
  });
  assert.ok(b.ok, `DataChannel client: ${JSON.stringify(b)}`);
  const hasPeerConnection = (e) => e && Array.isArray(e.rtc_stats) && e.rtc_stats.some((s) => s.type === "peer-connection" && typeof s.timestamp === "number");
  await waitFor("both clients' reports", PATIENCE, async () => {
    const list = await hayate.api("Sora_20211215.ListChannelRtcStats", { channel_id: channel });
    const ids = list.filter(hasPeerConnection).map((e) => e.connection_id).sort();
    return { ok: ids.length === 2 && ids.includes(a.connectionId) && ids.includes(b.connectionId), ids };
  });
  // The DataChannel client has no WebSocket left: its reports are
  // requested with req-stats and keep coming.
  const first = await hayate.api("Sora_20211215.GetRtcStats", { channel_id: channel, connection_id: b.connectionId });
  assert.equal(await dc.evaluate(() => window.conn.ws === null), true, "the DataChannel client closed its WebSocket");
  await waitFor("a newer DataChannel report", PATIENCE, async () => {
    const now = await hayate.api("Sora_20211215.GetRtcStats", { channel_id: channel, connection_id: b.connectionId });
    return { ok: now.timestamp > first.timestamp && hasPeerConnection(now), timestamp: now.timestamp };
  });
  for (const e of await hayate.api("Sora_20211215.ListRtcStats")) {
    assert.deepEqual(Object.keys(e).sort(), ["channel_id", "connection_id", "rtc_stats", "timestamp"]);
    assert.match(e.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  }
});
