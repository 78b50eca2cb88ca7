// Helpers of the TURN and ICE-TCP end-to-end tests.
import { execFileSync } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { PATIENCE, mediaState, waitFor } from "./harness.mjs";

// testCertificate makes a self-signed certificate for 127.0.0.1 (Debian's
// openssl) and returns its files and the base64 SHA-256 of its public key,
// which Chromium's --ignore-certificate-errors-spki-list takes: Chromium
// then accepts this certificate, and no other, on TURN-TLS.
export function testCertificate() {
  const dir = mkdtempSync(path.join(tmpdir(), "hayate-turn-tls-"));
  const certFile = path.join(dir, "cert.pem");
  const keyFile = path.join(dir, "key.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", keyFile, "-out", certFile, "-days", "1", "-subj", "/CN=hayate e2e TURN",
    "-addext", "subjectAltName=IP:127.0.0.1"], { stdio: "ignore" });
  const spkiDER = new X509Certificate(readFileSync(certFile)).publicKey.export({ type: "spki", format: "der" });
  return { certFile, keyFile, spki: createHash("sha256").update(spkiDER).digest("base64") };
}

// relayOnly is an init script that wraps RTCPeerConnection before the SDK
// creates one: iceTransportPolicy "relay", and of the offer's iceServers
// only the URLs matching keep (a RegExp source).
export function relayOnly(keep) {
  return {
    fn: (keep) => {
      const Native = window.RTCPeerConnection;
      const re = new RegExp(keep);
      class RelayOnly extends Native {
        constructor(config = {}, ...rest) {
          const iceServers = (config.iceServers || [])
            .map((s) => ({ ...s, urls: [].concat(s.urls).filter((u) => re.test(u)) }))
            .filter((s) => s.urls.length > 0);
          window.relayConfig = { iceServers, iceTransportPolicy: "relay" };
          super({ ...config, iceServers, iceTransportPolicy: "relay" }, ...rest);
        }
      }
      window.RTCPeerConnection = RelayOnly;
    },
    arg: keep,
  };
}

// decodesVideo waits until the page decodes video frames and returns its
// media state (with the selected candidate pair).
export async function decodesVideo(p) {
  return await waitFor("video decoded", PATIENCE, async () => {
    const s = await mediaState(p);
    const video = s.inbound.filter((i) => i.kind === "video");
    return { ok: video.length > 0 && video.every((v) => v.frames > 0) && s.pair !== null, ...s };
  });
}
