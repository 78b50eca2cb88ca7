// End-to-end: DataChannel signaling and real-time messaging with the
// unmodified sora-js-sdk@2026.1.0 in Debian's Chromium against a real
// Hayate node, on loopback only.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { PATIENCE, startEnv, stopEnv, openClient, withTimeout, waitFor } from "./harness.mjs";

const env = {};
let hayate, pages, browser;

before(async () => {
  ({ hayate, pages, browser } = await startEnv(env));
});

after(async () => {
  assert.equal(await stopEnv(env), 0, "hayate exits 0 on SIGTERM");
});

// connectDC runs connect() of Sora.messaging() (kind "messaging") or of a
// media role with DataChannel options, recording what the SDK reports.
async function connectDC(p, { url, channel, kind, options }) {
  return await withTimeout(
    p.evaluate(
      async ({ url, channel, kind, options }) => {
        const ev = (window.dc = { messages: [], switched: [], notifies: [], signaling: [], disconnects: [], tracks: [], datachannels: [] });
        const sora = window.Sora.connection(url, false);
        const conn = kind === "messaging" ? sora.messaging(channel, null, options) : sora[kind](channel, null, options);
        const text = new TextDecoder();
        conn.on("message", (e) => ev.messages.push({ label: e.label, text: text.decode(e.data) }));
        conn.on("switched", (e) => ev.switched.push(e.ignore_disconnect_websocket));
        conn.on("datachannel", (e) => ev.datachannels.push(e.datachannel.label));
        conn.on("notify", (e, transport) => ev.notifies.push({ event: e.event_type, id: e.connection_id, transport }));
        conn.on("signaling", (e) => ev.signaling.push({ type: e.type, transport: e.transportType }));
        conn.on("track", (e) => ev.tracks.push({ kind: e.track.kind, stream: e.streams[0] && e.streams[0].id }));
        conn.on("disconnect", (e) => ev.disconnects.push({ type: e.type, title: e.title, code: e.code, reason: e.reason }));
        window.conn = conn;
        try {
          const stream = kind === "sendrecv" ? await navigator.mediaDevices.getUserMedia({ audio: true, video: true }) : undefined;
          await conn.connect(stream);
          return { ok: true, connectionId: conn.connectionId };
        } catch (e) {
          return { ok: false, name: e.name, code: e.code, reason: e.reason, message: String(e.message) };
        }
      },
      { url, channel, kind, options },
    ),
    PATIENCE,
    `connect ${kind} to ${channel}`,
  );
}

// events reads the page's record.
const events = (p) => p.evaluate(() => JSON.parse(JSON.stringify({ ...window.dc, ws: window.conn.ws !== null })));

// send sends text on a messaging label with the SDK's sendMessage.
const send = (p, label, text) => p.evaluate(({ label, text }) => window.conn.sendMessage(label, new TextEncoder().encode(text)), { label, text });

function messagesOn(ev, label) {
  return ev.messages.filter((m) => m.label === label).map((m) => m.text).sort();
}

test("Sora.messaging() clients and a sendrecv client exchange messages on #chat; recvonly labels only receive; compress round-trips", async () => {
  const channel = "e2e-messaging";
  const [m1, m2, s] = [await openClient(browser, pages.url), await openClient(browser, pages.url), await openClient(browser, pages.url)];
  const c1 = await connectDC(m1, {
    url: hayate.url, channel, kind: "messaging",
    options: { dataChannels: [{ label: "#chat", direction: "sendrecv" }, { label: "#news", direction: "recvonly" }, { label: "#zip", direction: "sendrecv", compress: true }] },
  });
  assert.ok(c1.ok, `messaging 1: ${JSON.stringify(c1)}`);
  const c2 = await connectDC(m2, {
    url: hayate.url, channel, kind: "messaging",
    options: { dataChannels: [{ label: "#chat", direction: "sendrecv" }, { label: "#news", direction: "sendrecv" }, { label: "#zip", direction: "sendrecv", compress: true }] },
  });
  assert.ok(c2.ok, `messaging 2: ${JSON.stringify(c2)}`);
  const cs = await connectDC(s, {
    url: hayate.url, channel, kind: "sendrecv",
    options: { dataChannelSignaling: true, dataChannels: [{ label: "#chat", direction: "sendrecv" }, { label: "#news", direction: "sendrecv" }, { label: "#zip", direction: "sendrecv" }] },
  });
  assert.ok(cs.ok, `sendrecv: ${JSON.stringify(cs)}`);
  for (const p of [m1, m2, s]) {
    await waitFor("switched and the # channels", PATIENCE, async () => {
      const ev = await events(p);
      return { ok: ev.switched.length === 1 && ev.datachannels.length === 3, ev: { switched: ev.switched, dc: ev.datachannels } };
    });
  }

  await send(m1, "#chat", "hello from m1");
  await send(m2, "#chat", "hello from m2");
  await send(s, "#chat", "hello from s");
  await send(m1, "#news", "m1 cannot send news"); // recvonly: dropped by the node
  await send(m2, "#news", "news from m2");
  await send(m1, "#zip", "zipped by m1"); // m1 compresses, s does not
  await send(s, "#zip", "plain from s");
  const want = {
    m1: { "#chat": ["hello from m2", "hello from s"], "#news": ["news from m2"], "#zip": ["plain from s"] },
    m2: { "#chat": ["hello from m1", "hello from s"], "#news": [], "#zip": ["plain from s", "zipped by m1"] },
    s: { "#chat": ["hello from m1", "hello from m2"], "#news": ["news from m2"], "#zip": ["zipped by m1"] },
  };
  for (const [name, p] of [["m1", m1], ["m2", m2], ["s", s]]) {
    await waitFor(`${name}'s messages`, PATIENCE, async () => {
      const ev = await events(p);
      const got = { "#chat": messagesOn(ev, "#chat"), "#news": messagesOn(ev, "#news"), "#zip": messagesOn(ev, "#zip") };
      return { ok: JSON.stringify(got) === JSON.stringify(want[name]), got };
    });
  }
  const report = await hayate.api("Sora_20171010.GetStatsReport");
  assert.equal(report.data_channels.dropped.direction, 1, "m1's #news message dropped for its direction");
  assert.ok(report.total_received_sctp > 0 && report.total_sent_sctp > 0 && report.total_sent_sctp_byte_size > 0, "SCTP counters");
  for (const p of [m1, m2, s]) await p.context().close();
  await waitFor("no connections left", PATIENCE, async () => {
    const rep = await hayate.api("Sora_20171010.GetStatsReport");
    return { ok: rep.total_ongoing_connections === 0, n: rep.total_ongoing_connections };
  });
});

test("dataChannelSignaling with ignoreDisconnectWebSocket: switched, the WebSocket closes, re-offers and notifies come on DataChannels", async () => {
  const channel = "e2e-dc-signaling";
  const [p, o] = [await openClient(browser, pages.url), await openClient(browser, pages.url)];
  const cp = await connectDC(p, {
    url: hayate.url, channel, kind: "recvonly",
    options: {
      dataChannelSignaling: true, ignoreDisconnectWebSocket: true,
      dataChannels: [{ label: "signaling", compress: true }, { label: "notify", compress: true }],
    },
  });
  assert.ok(cp.ok, `recvonly with DataChannel signaling: ${JSON.stringify(cp)}`);
  await waitFor("switched, WebSocket closed by the SDK", PATIENCE, async () => {
    const ev = await events(p);
    return { ok: ev.switched.length === 1 && ev.switched[0] === true && !ev.ws, switched: ev.switched, ws: ev.ws };
  });
  await waitFor("the node keeps the connection without its WebSocket", PATIENCE, async () => {
    const rep = await hayate.api("Sora_20171010.GetStatsReport");
    return { ok: rep.data_channels.total_websocket_detached === 1 && rep.total_ongoing_connections === 1, dc: rep.data_channels };
  });

  // Another client joins: the re-offer comes on the signaling DataChannel
  // and its media arrives.
  const co = await connectDC(o, { url: hayate.url, channel, kind: "sendrecv", options: {} });
  assert.ok(co.ok, `sendrecv joins: ${JSON.stringify(co)}`);
  await waitFor("re-offer over the DataChannel and the joiner's tracks", PATIENCE, async () => {
    const ev = await events(p);
    const reoffer = ev.signaling.some((x) => x.type === "onmessage-re-offer" && x.transport === "datachannel");
    const reanswer = ev.signaling.some((x) => x.type === "send-re-answer" && x.transport === "datachannel");
    const tracks = ev.tracks.filter((t) => t.stream === co.connectionId).map((t) => t.kind).sort().join();
    return { ok: reoffer && reanswer && tracks === "audio,video", reoffer, reanswer, tracks, signaling: ev.signaling.slice(-5) };
  });
  await waitFor("connection.created of the joiner on the notify DataChannel", PATIENCE, async () => {
    const ev = await events(p);
    return { ok: ev.notifies.some((n) => n.event === "connection.created" && n.id === co.connectionId && n.transport === "datachannel"), n: ev.notifies };
  });

  // The joiner leaves: its notify comes on the DataChannel too.
  await o.context().close();
  await waitFor("connection.destroyed on the notify DataChannel", PATIENCE, async () => {
    const ev = await events(p);
    return { ok: ev.notifies.some((n) => n.event === "connection.destroyed" && n.id === co.connectionId && n.transport === "datachannel"), n: ev.notifies };
  });

  // disconnect() goes on the signaling DataChannel; the node closes every
  // channel and the SDK reports a normal end.
  const ended = await withTimeout(p.evaluate(async () => { await window.conn.disconnect(); return window.dc.disconnects; }), PATIENCE, "disconnect");
  assert.equal(ended.length, 1, JSON.stringify(ended));
  assert.equal(ended[0].type, "normal", JSON.stringify(ended));
  assert.equal(ended[0].code, 1000);
  assert.equal(ended[0].reason, "TYPE-DISCONNECT");
  await waitFor("no connections left", PATIENCE, async () => {
    const rep = await hayate.api("Sora_20171010.GetStatsReport");
    return { ok: rep.total_ongoing_connections === 0 && rep.media.transports === 0, n: rep.total_ongoing_connections };
  });
  await p.context().close();
});
