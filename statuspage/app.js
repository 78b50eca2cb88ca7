// Hayate status page: reads the node's HTTP API (the same POST / with
// x-sora-target that every client uses) and refreshes itself. Data is only
// ever put into the page as text (textContent), never as HTML.
"use strict";

const tokenKey = "hayate-api-token";
const params = new URLSearchParams(location.search);
const refreshMs = Math.max(500, Number(params.get("refresh") || 2) * 1000);
const $ = (id) => document.getElementById(id);

class APIError extends Error {
  constructor(status, type, message) {
    super(`${status} ${type}: ${message}`);
    this.status = status;
    this.type = type;
  }
}

// api calls one operation with the token kept in this tab, if any.
async function api(target, body) {
  const headers = { "x-sora-target": target, "content-type": "application/json" };
  const token = sessionStorage.getItem(tokenKey);
  if (token) headers.authorization = "Bearer " + token;
  const res = await fetch("/", { method: "POST", headers, body: body === undefined ? "" : JSON.stringify(body), cache: "no-store" });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new APIError(res.status, data.error_type || "ERROR", data.message || res.statusText);
  return data;
}

function text(id, value) {
  $(id).textContent = value === undefined || value === null ? "–" : String(value);
}

function cell(tr, value, cls) {
  const td = document.createElement("td");
  td.textContent = value === undefined || value === null || value === "" ? "–" : String(value);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function fillRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function codec(v) {
  return v && typeof v === "object" ? v.codec_type : "–";
}

function since(micros) {
  return new Date(micros / 1000).toLocaleTimeString();
}

function showStats(s) {
  text("node-name", s.node_name);
  text("version", s.version);
  text("mode", s.mode);
  text("operator-mode", s.operator_mode);
  text("health-mode", s.health_mode);
  const ready = $("ready");
  ready.textContent = s.ready ? "ready" : "not ready";
  ready.className = "badge " + (s.ready ? "ready" : "not-ready");
  for (const b of document.querySelectorAll("button[data-mode]")) {
    b.setAttribute("aria-pressed", String(b.dataset.mode === s.operator_mode));
  }
  text("connections", s.total_ongoing_connections);
  text("sessions", s.total_ongoing_sessions);
  text("created", s.total_connection_created);
  text("refused", Object.values(s.refused_connections || {}).reduce((a, b) => a + b, 0));
  text("transports", s.media && s.media.transports);

  const d = s.drain || { active: false };
  $("drain").dataset.active = String(d.active);
  $("drain-none").hidden = d.active;
  $("drain-info").hidden = !d.active;
  if (d.active) {
    text("drain-reason", d.reason);
    text("drain-started", new Date(d.started_at).toLocaleTimeString());
    text("drain-left", d.connections);
    text("drain-start-connections", d.connections_at_start);
    text("drain-sessions", d.sessions);
    text("drain-start-sessions", d.sessions_at_start);
    const bar = $("drain-bar");
    bar.value = d.connections_at_start > 0 ? Math.max(0, d.connections_at_start - d.connections) / d.connections_at_start : 1;
    bar.textContent = Math.round(bar.value * 100) + "% drained";
    $("drain-deadline-line").hidden = !d.deadline;
    if (d.deadline) text("drain-deadline", new Date(d.deadline).toLocaleTimeString());
  }
}

function showConnections(conns) {
  const channels = new Map();
  for (const c of conns) {
    let ch = channels.get(c.channel_id);
    if (!ch) channels.set(c.channel_id, (ch = { session: c.session_id, conns: [], roles: {} }));
    ch.conns.push(c);
    ch.roles[c.role] = (ch.roles[c.role] || 0) + 1;
  }
  const ids = [...channels.keys()].sort();
  text("channel-count", `(${ids.length})`);
  fillRows($("channels").tBodies[0], ids.map((id) => {
    const ch = channels.get(id);
    const tr = document.createElement("tr");
    tr.dataset.channel = id;
    cell(tr, id);
    cell(tr, ch.conns.length, "count");
    cell(tr, Object.entries(ch.roles).map(([r, n]) => `${n} ${r}`).join(", "));
    cell(tr, ch.session, "id");
    return tr;
  }));
  const sorted = [...conns].sort((a, b) => a.channel_id.localeCompare(b.channel_id) || a.created_time - b.created_time);
  fillRows($("connections-table").tBodies[0], sorted.map((c) => {
    const tr = document.createElement("tr");
    tr.dataset.connection = c.connection_id;
    cell(tr, c.channel_id);
    cell(tr, c.connection_id, "id");
    cell(tr, c.role);
    cell(tr, c.client_id);
    cell(tr, codec(c.audio));
    cell(tr, codec(c.video));
    cell(tr, since(c.created_time));
    return tr;
  }));
}

function showCluster(nodes) {
  $("cluster").hidden = nodes === null;
  if (nodes === null) return;
  fillRows($("cluster-nodes").tBodies[0], nodes.map((n) => {
    const tr = document.createElement("tr");
    tr.dataset.node = n.cluster_node_name;
    cell(tr, n.cluster_node_name);
    cell(tr, n.mode);
    cell(tr, n.connected ? "yes" : "no");
    cell(tr, n.connections);
    cell(tr, n.epoch);
    cell(tr, n.temporary_node ? "temporary" : "regular");
    return tr;
  }));
}

function showError(err) {
  const needToken = err instanceof APIError && err.status === 401;
  $("token-form").hidden = !needToken;
  $("error").hidden = needToken || !err;
  if (err && !needToken) $("error").textContent = String(err.message || err);
}

async function refresh() {
  try {
    const [stats, conns] = await Promise.all([api("Sora_20171010.GetStatsReport"), api("Sora_20201013.ListConnections")]);
    let nodes = null;
    try {
      nodes = await api("Sora_20211215.ListClusterNodes");
    } catch (e) {
      if (!(e instanceof APIError && e.type === "CLUSTER-NOT-ENABLED")) throw e;
    }
    showStats(stats);
    showConnections(conns);
    showCluster(nodes);
    showError(null);
    text("updated", "updated " + new Date().toLocaleTimeString());
    document.body.dataset.loaded = "true";
  } catch (e) {
    showError(e);
    text("updated", "not updated");
  }
}

async function setMode(mode) {
  try {
    await api("Sora_20211215.ChangeMode", { mode });
  } catch (e) {
    showError(e);
  }
  await refresh();
}

let timer = null;
function loop() {
  clearTimeout(timer);
  refresh().finally(() => (timer = setTimeout(loop, refreshMs)));
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("button[data-mode]")) {
    b.addEventListener("click", () => setMode(b.dataset.mode));
  }
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(tokenKey, $("token").value);
    $("token").value = "";
    loop();
  });
  loop();
});
