// End-to-end: the unmodified sora-js-sdk in Chromium reaching Hayate only
// through its built-in TURN server (TURN-TCP and TURN-TLS, forced with a
// relay-only RTCPeerConnection), on loopback.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  PATIENCE, startEnv, stopEnv, openClient, connect, mediaState, disconnect, waitFor,
} from "./harness.mjs";
import { testCertificate, relayOnly, decodesVideo } from "./turn.mjs";

const env = {};
let hayate, pages, browser;

before(async () => {
  const cert = testCertificate();
  ({ hayate, pages, browser } = await startEnv(env,
    ["--turn_tls=true", `--turn_tls_cert_file=${cert.certFile}`, `--turn_tls_key_file=${cert.keyFile}`],
    [`--ignore-certificate-errors-spki-list=${cert.spki}`]));
});

after(async () => {
  assert.equal(await stopEnv(env), 0, "hayate exits 0 on SIGTERM");
});

test("forced to relay, recvonly clients decode video through TURN-TCP and TURN-TLS", async () => {
  const channel = "e2e-turn";
  const pub = await openClient(browser, pages.url);
  const viaTCP = await openClient(browser, pages.url, relayOnly("^turn:.*transport=tcp$"));
  const viaTLS = await openClient(browser, pages.url, relayOnly("^turns:"));
  const cp = await connect(pub, { url: hayate.url, channel, role: "sendonly" });
  assert.ok(cp.ok, `publisher connects: ${JSON.stringify(cp)}`);
  for (const [p, relayProtocol] of [[viaTCP, "tcp"], [viaTLS, "tls"]]) {
    const c = await connect(p, { url: hayate.url, channel, role: "recvonly" });
    assert.ok(c.ok, `viewer through TURN-${relayProtocol} connects: ${JSON.stringify(c)}`);
    const state = await decodesVideo(p);
    assert.equal(state.pair.localType, "relay", `selected pair ${JSON.stringify(state.pair)}`);
    assert.equal(state.pair.relayProtocol, relayProtocol, `selected pair ${JSON.stringify(state.pair)}`);
  }
  const report = await hayate.api("Sora_20171010.GetStatsReport");
  assert.equal(report.total_turn_tcp_connections, 2, "two connections through TURN over TCP or TLS");
  assert.ok(report.turn.total_allocations.tcp >= 1 && report.turn.total_allocations.tls >= 1, JSON.stringify(report.turn));
  assert.ok(report.media.links.total_opened >= 2, "the relays are links of the media core");
  for (const p of [viaTCP, viaTLS, pub]) {
    const events = await disconnect(p);
    assert.equal(events[0].reason, "TYPE-DISCONNECT");
  }
  await waitFor("the allocations closed with their connections", PATIENCE, async () => {
    const r = await hayate.api("Sora_20171010.GetStatsReport");
    return { ok: r.turn.allocations === 0 && r.turn.credentials === 0, turn: r.turn };
  });
});
