// asyncq web: polls the JSON API once a second and draws the page; charts are plain SVG drawn here.
"use strict";

const POLL_MS = 1000;
const HISTORY_S = 300; // the server keeps five minutes of history
const MIN_WINDOW_S = 60;
const body = document.body;
const page = body.dataset.page;
const queueName = body.dataset.queue;
const csrf = document.querySelector('meta[name="asyncq-csrf"]').content;
const main = document.getElementById("main");
const banner = document.getElementById("banner");
const drawn = {}; // the last HTML of each part, so that unchanged parts (and their buttons) stay as they are

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return `${(seconds * 1000).toFixed(0)} ms`;
  if (seconds < 90) return `${seconds.toFixed(1)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function clock(epoch) {
  return new Date(epoch * 1000).toLocaleTimeString([], { hour12: false });
}

function rate(value) {
  return value >= 100 ? Math.round(value).toLocaleString() : (+value).toFixed(1);
}

function put(id, html) {
  if (drawn[id] === html) return;
  drawn[id] = html;
  document.getElementById(id).innerHTML = html;
}

function showOutage(redis, serverDown) {
  if (serverDown) {
    banner.textContent = `asyncq web does not answer (${serverDown}); retrying every second`;
  } else if (redis && !redis.up) {
    const since = Date.now() / 1000 - redis.since;
    banner.textContent = `Redis unreachable since ${clock(redis.since)} (${duration(since)}): ${redis.reason}; retrying every second`;
  } else {
    banner.hidden = true;
    return;
  }
  banner.hidden = false;
}

// -- charts -------------------------------------------------------------------------------------------------

function niceMax(value) {
  if (!(value > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (value <= m * step) return m * step;
  return 10 * step;
}

function tick(value, unit) {
  if (unit === "ms" && value >= 1000) return `${+(value / 1000).toPrecision(3)} s`;
  return `${+value.toPrecision(3)}${unit ? " " + unit : ""}`;
}

// series: [{values: [[t, v|null], ...], color}]; a null breaks the line.
function chartSvg(series, end, unit, span) {
  const WINDOW_S = Math.min(HISTORY_S, Math.max(MIN_WINDOW_S, Math.ceil(span / 60) * 60));
  const W = 600, H = 160, left = 52, bottom = 18, top = 8;
  const all = series.flatMap((s) => s.values.map((p) => p[1]).filter((v) => v !== null));
  const ymax = niceMax(Math.max(0, ...all));
  const x = (t) => left + ((t - (end - WINDOW_S)) / WINDOW_S) * (W - left - 4);
  const y = (v) => top + (1 - v / ymax) * (H - top - bottom);
  let out = `<svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img">`;
  for (const f of [0, 0.5, 1]) {
    out += `<line class="axis" x1="${left}" x2="${W - 4}" y1="${y(ymax * f)}" y2="${y(ymax * f)}"/>`;
    out += `<text class="tick" x="${left - 4}" y="${y(ymax * f) + 3}" text-anchor="end">${esc(tick(ymax * f, unit))}</text>`;
  }
  out += `<text class="tick" x="${left}" y="${H - 4}">-${WINDOW_S / 60} min</text>`;
  out += `<text class="tick" x="${W - 4}" y="${H - 4}" text-anchor="end">now</text>`;
  for (const s of series) {
    let path = "";
    let pen = false;
    for (const [t, v] of s.values) {
      if (v === null || t < end - WINDOW_S) { pen = false; continue; }
      path += `${pen ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    }
    if (path) out += `<path d="${path}" fill="none" stroke="${s.color}" stroke-width="1.8" data-series="${esc(s.name)}"/>`;
  }
  return out + "</svg>";
}

function legend(series) {
  return `<div class="legend">${series.map((s) => `<span><i style="background:${s.color}"></i>${esc(s.label)}</span>`).join("")}</div>`;
}

// -- pages --------------------------------------------------------------------------------------------------

function queuesPage(data) {
  const rows = data.queues.map((q) => `<tr data-queue="${esc(q.name)}">
      <td><a href="/queues/${encodeURIComponent(q.name)}">${esc(q.name)}</a></td>
      <td class="num depth">${q.depth}</td><td class="num">${duration(q.oldest_age)}</td>
      <td class="num">${q.in_flight}</td><td class="num">${q.scheduled}</td><td class="num">${q.retried}</td>
      <td class="num dead">${q.dead}</td><td class="num">${q.unfinished}</td><td class="num">${q.consumers}</td>
      <td class="num">${rate(q.put_rate)}</td><td class="num">${rate(q.done_rate)}</td></tr>`).join("");
  put("list", `<table id="queues"><thead><tr><th>queue</th><th class="num">depth</th><th class="num">oldest waiting</th>
      <th class="num">in flight</th><th class="num">scheduled</th><th class="num">retried</th><th class="num">dead</th>
      <th class="num">unfinished</th><th class="num">consumers</th><th class="num">in/s</th><th class="num">out/s</th></tr></thead>
      <tbody>${rows || '<tr><td colspan="11" class="empty">no asyncq queue on this server yet</td></tr>'}</tbody></table>`);
}

function figure(id, label, value) {
  return `<div class="figure" id="fig-${id}"><div class="label">${label}</div><div class="value">${value}</div></div>`;
}

function queuePage(q) {
  put("figures", [
    figure("depth", "depth", q.depth),
    figure("oldest", "oldest waiting", duration(q.oldest_age)),
    figure("in-flight", "in flight", q.in_flight),
    figure("scheduled", "scheduled (retries)", q.scheduled),
    figure("retried", "retried (total)", q.retried),
    figure("dead", "dead", q.dead),
    figure("unfinished", "unfinished", q.unfinished),
    figure("put-rate", "in / s", rate(q.put_rate)),
    figure("done-rate", "out / s", rate(q.done_rate)),
  ].join(""));
  const end = q.history.length ? q.history[q.history.length - 1][0] : Date.now() / 1000;
  const span = q.history.length ? end - q.history[0][0] : 0;
  const pick = (i) => q.history.map((p) => [p[0], p[i]]);
  const flow = [
    { name: "put", label: "items in / s", color: "var(--put)", values: pick(1) },
    { name: "done", label: "items out / s", color: "var(--done)", values: pick(2) },
  ];
  const latency = [
    { name: "p50", label: "p50", color: "var(--p50)", values: pick(3) },
    { name: "p99", label: "p99", color: "var(--p99)", values: pick(4) },
  ];
  put("chart-flow", `<h2>Items per second</h2>${legend(flow)}${chartSvg(flow, end, "", span)}`);
  put("chart-latency", `<h2>Enqueue-to-start latency</h2>${legend(latency)}${chartSvg(latency, end, "ms", span)}`);
  const consumers = q.consumers.map((c) => `<tr><td><code>${esc(c.id)}</code></td><td>${esc(c.host)}</td><td class="num">${c.pid}</td>
      <td class="num">${c.in_progress}/${c.concurrency}</td><td class="num">${c.claimed}</td><td class="num">${c.processed}</td>
      <td class="num">${c.failed}</td><td class="num">${c.latency_ms.p50.toFixed(2)} ms</td><td class="num">${c.latency_ms.p99.toFixed(2)} ms</td>
      <td class="num">${duration(c.heartbeat_age)}</td></tr>`).join("");
  put("consumers", `<table><thead><tr><th>consumer</th><th>host</th><th class="num">pid</th><th class="num">busy</th>
      <th class="num">claimed</th><th class="num">processed</th><th class="num">failed</th><th class="num">p50</th>
      <th class="num">p99</th><th class="num">heartbeat</th></tr></thead>
      <tbody>${consumers || '<tr><td colspan="10" class="empty">no live consumer</td></tr>'}</tbody></table>`);
  if (q.dead_letters === null) return; // Redis did not answer: keep what is shown
  const letters = q.dead_letters.map((d) => `<tr data-id="${esc(d.id)}"><td><code>${esc(d.id)}</code></td>
      <td>${d.failed_at ? clock(d.failed_at) : ""}</td><td class="reason">${esc(d.reason)}</td><td class="payload">${esc(d.payload)}</td>
      <td>${d.id ? `<button class="requeue" data-id="${esc(d.id)}">Requeue</button>` : ""}</td></tr>`).join("");
  put("dead-letters", `<table><thead><tr><th>id</th><th>failed</th><th>reason</th><th>payload</th><th></th></tr></thead>
      <tbody>${letters || '<tr><td colspan="5" class="empty">no dead letters</td></tr>'}</tbody></table>`);
}

function layout() {
  if (page === "login") {
    const form = document.getElementById("login");
    form.hidden = false;
    form.elements.next.value = location.pathname;
    return false;
  }
  if (page === "queues") {
    main.innerHTML = `<h1>Queues</h1><div id="list"></div>`;
    return true;
  }
  document.title = `asyncq: ${queueName}`;
  main.innerHTML = `<h1>Queue <code>${esc(queueName)}</code></h1><div id="figures" class="figures"></div>
    <div class="charts"><div class="chart" id="chart-flow"></div><div class="chart" id="chart-latency"></div></div>
    <h2>Consumers</h2><div id="consumers"></div>
    <h2>Dead letters</h2>
    <div class="actions"><button id="requeue-all">Requeue all</button><button id="purge" class="danger">Purge</button>
    <span id="notice"></span></div><div id="dead-letters"></div>`;
  document.getElementById("requeue-all").onclick = () => act("requeue", { all: true });
  document.getElementById("purge").onclick = () => {
    if (confirm(`Delete every dead letter of ${queueName}?`)) act("purge", {});
  };
  document.getElementById("dead-letters").addEventListener("click", (event) => {
    const button = event.target.closest("button.requeue");
    if (button) act("requeue", { ids: [button.dataset.id] });
  });
  return true;
}

async function act(action, payload) {
  const notice = document.getElementById("notice");
  const response = await fetch(`/api/queues/${encodeURIComponent(queueName)}/dead-letters/${action}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(payload),
    credentials: "same-origin",
  });
  const reply = await response.json().catch(() => ({}));
  if (!response.ok) notice.textContent = `refused: ${reply.error || response.status}`;
  else if (action === "purge") notice.textContent = `purged ${reply.purged} dead letter(s)`;
  else notice.textContent = `requeued ${reply.requeued.length} item(s)`;
  poll();
}

async function poll() {
  const url = page === "queues" ? "/api/queues" : `/api/queues/${encodeURIComponent(queueName)}`;
  try {
    const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    const data = await response.json();
    document.getElementById("clock").textContent = clock(Date.now() / 1000);
    showOutage(data.redis, null);
    if (response.status === 404) put("figures", `<p class="empty">${esc(data.error)}</p>`);
    else if (response.ok) (page === "queues" ? queuesPage : queuePage)(data);
  } catch (error) {
    showOutage(null, error.message || "no answer");
  }
}

if (layout()) {
  poll();
  setInterval(poll, POLL_MS);
}
