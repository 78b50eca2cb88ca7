// End-to-end cluster redirect: three Hayate nodes on loopback form a
// cluster; the unmodified sora-js-sdk in Chromium, given the signaling URL
// of a node that does not own the channel (or a dead URL and a live one),
// ends up connected to the owner and exchanges media there.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import {
  PATIENCE, startHayate, startPageServer, launchBrowser, openClient, connect, mediaState, disconnect, waitFor,
} from "./harness.mjs";

let nodes = [], pages, browser, dataDir;

before(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "hayate-e2e-cluster-"));
  for (const i of [1, 2, 3]) {
    nodes.push(await startHayate([
      "--cluster=true", `--cluster_node_name=e2e-${i}`, "--cluster_port=0", "--cluster_raft_port=0",
      `--cluster_data_dir=${path.join(dataDir, `n${i}`)}`, "--cluster_heartbeat_interval=250 ms",
      // No node dies here: leases long enough that a loaded machine never
      // lets one lapse mid-test (a lapse closes the calls with 1012).
      "--cluster_lease_ttl=10 s", "--cluster_lease_grace=2 s",
    ]));
  }
  // Formed through node 1, naming each node by its cluster RPC address.
  await nodes[0].api("Sora_20221221.InitCluster", { node_name_list: nodes.map((n) => n.clusterRPC) });
  await waitFor("three connected nodes in normal mode", PATIENCE, async () => {
    const list = await nodes[0].api("Sora_20211215.ListClusterNodes");
    const modes = await Promise.all(nodes.map((n) => n.api("Sora_20211215.GetMode")));
    return {
      ok: list.length === 3 && list.every((n) => n.connected && n.mode === "normal") && modes.every((m) => m.mode === "normal"),
      list, modes,
    };
  });
  pages = await startPageServer();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (pages) await pages.close();
  for (const n of nodes) {
    const code = await n.stop();
    assert.equal(code, 0, "each node exits 0 on SIGTERM");
  }
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

// A signaling URL nobody listens on.
async function deadURL() {
  const srv = createServer();
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const port = srv.address().port;
  await new Promise((r) => srv.close(r));
  return `ws://127.0.0.1:${port}/signaling`;
}

async function connectionIDs(node) {
  return (await node.api("Sora_20201013.ListConnections")).map((c) => c.connection_id);
}

test("a client sent to a node that does not own the channel is redirected to the owner", async () => {
  const channel = "e2e-redirect";
  const [owner, other, third] = nodes; // the first connect makes the node it reaches the owner (equal loads)
  const a = await openClient(browser, pages.url);
  const ca = await connect(a, { url: owner.url, channel, role: "sendrecv" });
  assert.ok(ca.ok, `A connects to the owner: ${JSON.stringify(ca)}`);
  const owners = await owner.api("Sora_20211215.ListClusterChannels");
  assert.ok(owners.some((c) => c.channel_id === channel && c.cluster_node_name === owner.clusterNode),
    `the channel is owned by ${owner.clusterNode}: ${JSON.stringify(owners)}`);

  // B is given the other node's URL; C a dead URL and the third node's.
  const b = await openClient(browser, pages.url);
  const cb = await connect(b, { url: other.url, channel, role: "sendrecv" });
  assert.ok(cb.ok, `B connects through a redirect: ${JSON.stringify(cb)}`);
  const c = await openClient(browser, pages.url);
  const cc = await connect(c, { url: [await deadURL(), third.url], channel, role: "recvonly" });
  assert.ok(cc.ok, `C connects with a dead URL among its candidates: ${JSON.stringify(cc)}`);

  const onOwner = await connectionIDs(owner);
  for (const id of [ca.connectionId, cb.connectionId, cc.connectionId]) {
    assert.ok(onOwner.includes(id), `${id} is served by the owner: ${JSON.stringify(onOwner)}`);
  }
  assert.deepEqual(await connectionIDs(other), []);
  assert.deepEqual(await connectionIDs(third), []);
  assert.ok((await other.api("Sora_20171010.GetStatsReport")).total_redirects >= 1);
  assert.ok((await third.api("Sora_20171010.GetStatsReport")).total_redirects >= 1);

  // A and B exchange media on the owner; C receives both.
  for (const [p, want] of [[a, 1], [b, 1], [c, 2]]) {
    await waitFor("remote video decoded", PATIENCE, async () => {
      const s = await mediaState(p);
      const video = s.inbound.filter((i) => i.kind === "video");
      return { ok: video.length >= want && video.every((v) => v.frames > 0), inbound: s.inbound };
    });
  }
  for (const p of [c, b, a]) {
    const events = await disconnect(p);
    assert.equal(events[0].code, 1000, JSON.stringify(events));
    await p.context().close();
  }
});
