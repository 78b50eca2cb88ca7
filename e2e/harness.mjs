// Test harness: a real Hayate node (the built binary), a static page that
// loads the unmodified sora-js-sdk, and Debian's Chromium driven by
// playwright-core. All traffic stays on 127.0.0.1.
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { existsSync, appendFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));

// PATIENCE bounds every wait for something that should happen soon: sized
// for a loaded 2-core machine (a wait costs only as long as the event takes).
export const PATIENCE = 60000;
const root = path.resolve(here, "..");

// hayateBinary builds bin/hayate if it is missing (make test builds it first).
export function hayateBinary() {
  const bin = process.env.HAYATE_BIN || path.join(root, "bin", "hayate");
  if (!existsSync(bin)) {
    execFileSync("go", ["build", "-o", bin, "./cmd/hayate"], { cwd: root, stdio: "inherit" });
  }
  return bin;
}

// relayBinary builds bin/relayd (the impairment relay, internal/impair)
// if it is missing.
export function relayBinary() {
  const bin = process.env.RELAYD_BIN || path.join(root, "bin", "relayd");
  if (!existsSync(bin)) {
    execFileSync("go", ["build", "-o", bin, "./internal/impair/relayd"], { cwd: root, stdio: "inherit" });
  }
  return bin;
}

// startRelay runs an impairment relay on 127.0.0.1; cmd sends it one
// command (see internal/impair/relayd) and resolves with its JSON answer.
// The relay stands for the network: its delay must be the profile's, not
// the CPU load of the machine the browsers and the node share, which on a
// loaded machine (the stress runs: load average 13) made the repair of a
// lost packet late enough for Chromium to drop the frame. So it runs at
// nice -10 (root, as in CI; elsewhere nice warns and runs it as it is).
export async function startRelay() {
  const proc = spawn("nice", ["-n", "-10", relayBinary()], { stdio: ["pipe", "pipe", "inherit"] });
  let buf = "";
  const waiting = [];
  proc.stdout.on("data", (chunk) => {
    buf += chunk.toString();
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiting.shift();
      if (w) w(line);
    }
  });
  const next = () => new Promise((resolve) => waiting.push(resolve));
  const first = await withTimeout(next(), PATIENCE, "relay start");
  const addr = first.split(" ")[1];
  const cmd = async (line) => {
    const answer = next();
    proc.stdin.write(line + "\n");
    return JSON.parse(await withTimeout(answer, PATIENCE, `relay: ${line}`));
  };
  const stop = () => new Promise((resolve) => {
    if (proc.exitCode !== null) return resolve();
    proc.on("exit", () => resolve());
    proc.stdin.end();
  });
  return { addr, cmd, stop };
}

// startHayate runs a node on free ports and resolves when its ready line
// is printed, with the signaling URL and an API caller.
export async function startHayate(extraArgs = []) {
  const args = ["--signaling_port=0", "--api_port=0", "--media_port=0", "--turn_udp_listen_port=0", "--turn_tcp_listen_port=0",
    "--turn_tls_listen_port=0", "--ice_tcp_port=0", `--log_level=${process.env.HAYATE_LOG_LEVEL || "info"}`, ...extraArgs];
  const proc = spawn(hayateBinary(), args, { stdio: ["ignore", "ignore", "pipe"] });
  if (process.env.HAYATE_LOG_TO) proc.stderr.on("data", (c) => appendFileSync(process.env.HAYATE_LOG_TO, c));
  let log = "";
  const ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("hayate: no ready line\n" + log)), PATIENCE);
    proc.stderr.on("data", (chunk) => {
      log += chunk.toString();
      const m = log.match(/msg="hayate ready" signaling=(\S+) api=(\S+) media=(\S+)[^\n]*/);
      if (m) {
        clearTimeout(timer);
        const c = m[0].match(/cluster_node=(\S+) cluster_rpc=(\S+)/);
        const field = (k) => (m[0].match(new RegExp(` ${k}=(\\S+)`)) || [])[1];
        resolve({
          signaling: m[1], api: m[2], media: m[3], clusterNode: c && c[1], clusterRPC: c && c[2],
          turn: { udp: field("turn_udp"), tcp: field("turn_tcp"), tls: field("turn_tls") }, iceTCP: field("ice_tcp"),
        });
      }
    });
    proc.on("exit", (code) => reject(new Error(`hayate exited with ${code}\n${log}`)));
  });
  const api = async (target, body) => {
    const res = await fetch(`http://${ready.api}/`, {
      method: "POST",
      headers: { "x-sora-target": target, "content-type": "application/json" },
      body: body === undefined ? "" : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`${target}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const stop = async () => {
    if (proc.exitCode !== null) return proc.exitCode;
    proc.kill("SIGTERM");
    return await new Promise((resolve) => proc.on("exit", (code) => resolve(code)));
  };
  return {
    url: `ws://${ready.signaling}/signaling`, api, stop, log: () => log, proc, media: ready.media,
    turn: ready.turn, iceTCP: ready.iceTCP,
    clusterNode: ready.clusterNode, clusterRPC: ready.clusterRPC,
  };
}

// The page loads sora.js from the npm package, unmodified.
const page = `<!doctype html><meta charset="utf-8"><title>hayate e2e</title>
<script type="module">
import Sora from "/sora.js";
window.Sora = Sora;
window.soraReady = true;
</script>`;

// startPageServer serves the test page and the SDK on 127.0.0.1.
export async function startPageServer() {
  const sdk = await readFile(path.join(here, "node_modules", "sora-js-sdk", "dist", "sora.js"));
  const server = createServer((req, res) => {
    if (req.url === "/sora.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(sdk);
      return;
    }
    res.writeHead(200, { "content-type": "text/html" });
    res.end(page);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((r) => server.close(r)) };
}

// Chromium flags (docs/design.md, "Testing with real clients"): fake devices,
// loopback-only WebRTC, no background networking, no Google lookups.
const chromiumArgs = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--webrtc-ip-handling-policy=default_public_interface_only",
  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE ::1",
];

export async function launchBrowser(extraArgs = []) {
  return await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [...chromiumArgs, ...extraArgs],
  });
}

// openClient opens one page (one browser "tab") with the SDK loaded;
// initScript, if given, runs in the page before any of its scripts.
export async function openClient(browser, pageURL, initScript) {
  const context = await browser.newContext();
  if (initScript) await context.addInitScript(initScript.fn, initScript.arg);
  const p = await context.newPage();
  p.on("pageerror", (err) => console.error("page error:", err.message));
  await p.goto(pageURL);
  await p.waitForFunction(() => window.soraReady === true, null, { timeout: PATIENCE });
  return p;
}

// withTimeout bounds a promise: sora-js-sdk 2026.1.0's connect timeout
// never fires (docs/spec/sora-js-sdk-client.md §9), so every wait has our own limit.
export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// connect runs sora-js-sdk's connect() in the page, with the SDK's
// options and, for a sending role, getUserMedia constraints. It resolves
// with the connection's ids, or with the ConnectError's name, code and
// reason. Notify messages are kept in window.events.notifyMessages.
export async function connect(p, { url, channel, role, options = {}, constraints = { audio: true, video: true } }) {
  return await withTimeout(
    p.evaluate(
      async ({ url, channel, role, options, constraints }) => {
        window.events = window.events || { tracks: [], disconnects: [], notifies: [], notifyMessages: [] };
        const sora = window.Sora.connection(url, false);
        const conn = role === "recvonly" ? sora.recvonly(channel, null, options) : sora[role](channel, null, options);
        conn.on("track", (ev) => window.events.tracks.push({ kind: ev.track.kind, stream: ev.streams[0] && ev.streams[0].id }));
        conn.on("disconnect", (ev) => window.events.disconnects.push({ type: ev.type, title: ev.title, code: ev.code, reason: ev.reason }));
        conn.on("notify", (ev) => {
          window.events.notifies.push(ev.event_type);
          window.events.notifyMessages.push(ev);
        });
        window.conn = conn;
        try {
          const stream = role === "recvonly" ? undefined : await navigator.mediaDevices.getUserMedia(constraints);
          await conn.connect(stream);
          return { ok: true, connectionId: conn.connectionId, sessionId: conn.sessionId };
        } catch (e) {
          return { ok: false, name: e.name, code: e.code, reason: e.reason, message: String(e.message) };
        }
      },
      { url, channel, role, options, constraints },
    ),
    PATIENCE,
    `connect ${role} to ${channel}`,
  );
}

// mediaState reads the page's connection stats: decoded video frames and
// received audio packets per remote stream, and the selected candidate pair.
export async function mediaState(p) {
  return await p.evaluate(async () => {
    const stats = await window.conn.pc.getStats();
    const byId = new Map();
    stats.forEach((s) => byId.set(s.id, s));
    const inbound = [];
    let pair = null;
    stats.forEach((s) => {
      if (s.type === "inbound-rtp") {
        inbound.push({
          kind: s.kind, packets: s.packetsReceived, frames: s.framesDecoded || 0, ssrc: s.ssrc,
          width: s.frameWidth || 0, lost: s.packetsLost || 0, nacks: s.nackCount || 0, framesDropped: s.framesDropped || 0,
          freezes: s.freezeCount || 0, received: s.framesReceived || 0, rtx: s.retransmittedPacketsReceived || 0,
        });
      }
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const cp = byId.get(s.selectedCandidatePairId);
        const l = cp && byId.get(cp.localCandidateId);
        const r = cp && byId.get(cp.remoteCandidateId);
        if (l && r) {
          pair = {
            local: l.address || l.ip, remote: r.address || r.ip, remotePort: r.port, state: cp.state,
            localType: l.candidateType, relayProtocol: l.relayProtocol, protocol: l.protocol, remoteProtocol: r.protocol,
          };
        }
      }
    });
    return { inbound, pair, tracks: window.events.tracks, connectionState: window.conn.pc.connectionState };
  });
}

// disconnect runs the SDK's disconnect() and returns the disconnect event.
export async function disconnect(p) {
  return await withTimeout(
    p.evaluate(async () => {
      await window.conn.disconnect();
      return window.events.disconnects;
    }),
    PATIENCE,
    "disconnect",
  );
}

// waitFor polls an async condition until it holds or time runs out.
export async function waitFor(what, ms, cond) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await cond();
    if (last && last.ok) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}: ${JSON.stringify(last)}`);
}

// startEnv starts what a test file needs into env: a node (with
// extraArgs), the page server and the browser; what started is in env even
// if a later step throws. stopEnv stops them and returns the node's exit
// code (0 after SIGTERM).
export async function startEnv(env, extraArgs = [], browserArgs = []) {
  env.hayate = await startHayate(extraArgs);
  env.pages = await startPageServer();
  env.browser = await launchBrowser(browserArgs);
  return env;
}

export async function stopEnv(env) {
  if (!env) return 0;
  if (env.browser) await env.browser.close();
  if (env.pages) await env.pages.close();
  return env.hayate ? await env.hayate.stop() : 0;
}
