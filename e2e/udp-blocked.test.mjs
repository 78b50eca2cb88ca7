// End-to-end, on a network that blocks UDP: this file runs itself again in
// a network namespace of its own (unshare --net, as internal/netns does for
// Go tests), brings its loopback up and drops every UDP datagram with
// Debian's iptables. The unmodified sora-js-sdk in Chromium, with the
// offer as it comes (no forced relay), still connects and decodes video:
// through Hayate's TURN-TCP or TURN-TLS, and, with TURN off, through
// ICE-TCP.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { fileURLToPath } from "node:url";
import {
  PATIENCE, startHayate, startPageServer, launchBrowser, openClient, connect, disconnect, withTimeout,
} from "./harness.mjs";
import { testCertificate, decodesVideo } from "./turn.mjs";

const inside = process.env.HAYATE_E2E_NETNS === "1";

if (!inside) {
  test("in a network namespace of its own, with UDP dropped", () => {
    // The runner's own context variable would make the inner run report
    // to it rather than print TAP.
    const { NODE_TEST_CONTEXT, ...outer } = process.env;
    const r = spawnSync("unshare", ["--net", process.execPath, "--test", "--test-concurrency=1", fileURLToPath(import.meta.url)], {
      env: { ...outer, HAYATE_E2E_NETNS: "1" }, encoding: "utf8", timeout: 10 * PATIENCE,
    });
    assert.equal(r.status, 0, `the tests in the namespace failed (${r.error || r.signal || r.status}):\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /# pass 3\b/, r.stdout);
  });
} else {
  const sh = (cmd, ...args) => execFileSync(cmd, args, { stdio: "pipe" });
  let pages, browser, cert;

  before(async () => {
    sh("ip", "link", "set", "lo", "up");
    for (const chain of ["INPUT", "OUTPUT"]) sh("iptables", "-A", chain, "-p", "udp", "-j", "DROP");
    cert = testCertificate();
    pages = await startPageServer();
    browser = await launchBrowser([`--ignore-certificate-errors-spki-list=${cert.spki}`]);
  });

  after(async () => {
    if (browser) await browser.close();
    if (pages) await pages.close();
  });

  test("the firewall drops UDP here", async () => {
    // A datagram the OUTPUT chain drops fails its send with EPERM.
    const tx = createSocket("udp4");
    const err = await new Promise((r) => tx.send("x", 9, "127.0.0.1", r));
    tx.close();
    assert.equal(err && err.code, "EPERM", `a UDP send was not dropped: ${err}`);
  });

  // call connects a sendonly and a recvonly client and checks that the
  // viewer decodes video over a selected pair that expect accepts.
  async function call(hayate, channel, expect) {
    const pub = await openClient(browser, pages.url);
    const sub = await openClient(browser, pages.url);
    const cp = await connect(pub, { url: hayate.url, channel, role: "sendonly" });
    assert.ok(cp.ok, `publisher connects: ${JSON.stringify(cp)}`);
    const cs = await connect(sub, { url: hayate.url, channel, role: "recvonly" });
    assert.ok(cs.ok, `viewer connects: ${JSON.stringify(cs)}`);
    const state = await decodesVideo(sub);
    expect(state.pair);
    for (const p of [sub, pub]) await withTimeout(disconnect(p), PATIENCE, "disconnect");
    return state;
  }

  test("through TURN-TCP or TURN-TLS", async () => {
    const hayate = await startHayate(["--turn_tls=true", `--turn_tls_cert_file=${cert.certFile}`, `--turn_tls_key_file=${cert.keyFile}`]);
    try {
      await call(hayate, "udp-blocked-turn", (pair) => {
        assert.equal(pair.localType, "relay", JSON.stringify(pair));
        assert.ok(["tcp", "tls"].includes(pair.relayProtocol), JSON.stringify(pair));
      });
      const report = await hayate.api("Sora_20171010.GetStatsReport");
      assert.equal(report.total_turn_tcp_connections, 2, "both clients went through TURN over TCP or TLS");
      assert.equal(report.total_turn_udp_connections, 0);
    } finally {
      assert.equal(await hayate.stop(), 0);
    }
  });

  test("through ICE-TCP, with TURN off", async () => {
    const hayate = await startHayate(["--turn=false", "--ice_tcp=true"]);
    try {
      await call(hayate, "udp-blocked-ice-tcp", (pair) => {
        assert.equal(pair.protocol, "tcp", JSON.stringify(pair));
        assert.notEqual(pair.localType, "relay", JSON.stringify(pair));
      });
      const report = await hayate.api("Sora_20171010.GetStatsReport");
      assert.ok(report.ice_tcp.total_accepted >= 2 && report.ice_tcp.total_received_frames > 0, JSON.stringify(report.ice_tcp));
      assert.equal(report.media.total_received_packets, report.media.links.total_received_datagrams,
        "every datagram the media core got came over TCP");
    } finally {
      assert.equal(await hayate.stop(), 0);
    }
  });
}
