// End-to-end: the unmodified sora-js-sdk@2026.1.0 in Debian's Chromium
// against a real Hayate node, on loopback only.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  PATIENCE, startEnv, stopEnv, openClient, connect, mediaState, disconnect, waitFor,
} from "./harness.mjs";

const env = {};
let hayate, pages, browser;

before(async () => {
  ({ hayate, pages, browser } = await startEnv(env));
});

after(async () => {
  assert.equal(await stopEnv(env), 0, "hayate exits 0 on SIGTERM");
});

// Every remote stream of a page, with its tracks by kind.
function remoteStreams(state) {
  const byStream = {};
  for (const t of state.tracks) {
    byStream[t.stream] = byStream[t.stream] || [];
    byStream[t.stream].push(t.kind);
  }
  return byStream;
}

test("two sendrecv clients and a recvonly client exchange audio and video", async () => {
  const channel = "e2e-call";
  const [a, b, r] = [await openClient(browser, pages.url), await openClient(browser, pages.url), await openClient(browser, pages.url)];
  const ca = await connect(a, { url: hayate.url, channel, role: "sendrecv" });
  assert.ok(ca.ok, `A connects: ${JSON.stringify(ca)}`);
  const cb = await connect(b, { url: hayate.url, channel, role: "sendrecv" });
  assert.ok(cb.ok, `B connects: ${JSON.stringify(cb)}`);
  const cr = await connect(r, { url: hayate.url, channel, role: "recvonly" });
  assert.ok(cr.ok, `R connects: ${JSON.stringify(cr)}`);
  assert.equal(ca.sessionId, cb.sessionId);

  // Each sendrecv client receives the other's audio and video and decodes
  // video frames; the recvonly client receives both publishers.
  const expect = [
    [a, [cb.connectionId]],
    [b, [ca.connectionId]],
    [r, [ca.connectionId, cb.connectionId]],
  ];
  for (const [p, publishers] of expect) {
    const state = await waitFor("remote media decoded", PATIENCE, async () => {
      const s = await mediaState(p);
      const streams = remoteStreams(s);
      const video = s.inbound.filter((i) => i.kind === "video");
      const audio = s.inbound.filter((i) => i.kind === "audio");
      const ok =
        publishers.every((id) => (streams[id] || []).sort().join() === "audio,video") &&
        Object.keys(streams).length === publishers.length &&
        video.length >= publishers.length && video.every((v) => v.frames > 0) &&
        audio.length >= publishers.length && audio.every((x) => x.packets > 0);
      return { ok, streams, inbound: s.inbound, pair: s.pair };
    });
    assert.deepEqual({ local: state.pair.local, remote: state.pair.remote }, { local: "127.0.0.1", remote: "127.0.0.1" },
      "the selected candidate pair is loopback to loopback");
  }

  // GetStatsReport sees the three connections and forwarded packets.
  const report = await hayate.api("Sora_20171010.GetStatsReport");
  assert.equal(report.total_ongoing_connections, 3);
  assert.ok(report.media.total_forwarded_rtp > 0);
  assert.ok(report.media.srtp_profiles.AEAD_AES_128_GCM === 3, `Chromium negotiates AES-GCM: ${JSON.stringify(report.media.srtp_profiles)}`);

  // Each disconnects and sees a normal close.
  for (const p of [r, b, a]) {
    const events = await disconnect(p);
    assert.equal(events.length, 1, JSON.stringify(events));
    assert.equal(events[0].type, "normal");
    assert.equal(events[0].code, 1000);
    assert.equal(events[0].reason, "TYPE-DISCONNECT");
  }
  await waitFor("no connections left", PATIENCE, async () => {
    const rep = await hayate.api("Sora_20171010.GetStatsReport");
    return { ok: rep.total_ongoing_connections === 0 && rep.media.transports === 0, rep: rep.total_ongoing_connections };
  });
  for (const p of [a, b, r]) await p.context().close();
});

test("connect() rejects with 4503 BLOCKED-NEW-CONNECTION in block_new_connection", async () => {
  const p = await openClient(browser, pages.url);
  await hayate.api("Sora_20211215.ChangeMode", { mode: "block_new_connection" });
  try {
    const res = await connect(p, { url: hayate.url, channel: "e2e-blocked", role: "sendrecv" });
    assert.equal(res.ok, false);
    assert.equal(res.name, "ConnectError");
    assert.equal(res.code, 4503);
    assert.equal(res.reason, "BLOCKED-NEW-CONNECTION");
  } finally {
    await hayate.api("Sora_20211215.ChangeMode", { mode: "normal" });
    await p.context().close();
  }
});
