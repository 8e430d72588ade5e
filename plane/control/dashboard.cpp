#include "plane/control/dashboard.h"

namespace meshbox::control {

namespace {

// Rates and quantiles: the difference between the newest snapshot of /stats/edges and the
// oldest one of the last 10 s, p50/p99 as Prometheus' histogram_quantile() (the same sums as
// core/stats/quantile.cpp). Every name from the API reaches the page as text (textContent),
// never as markup.
constexpr std::string_view kPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>meshbox dashboard</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f5f6f8; }
header { background: #1d2330; color: #fff; padding: 10px 20px; display: flex; gap: 20px;
  align-items: baseline; }
header h1 { font-size: 18px; margin: 0; }
header .status { font-size: 12px; color: #b8c0cc; }
main { padding: 16px 20px; }
section { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; margin-bottom: 16px;
  padding: 10px 14px; overflow-x: auto; }
h2 { font-size: 15px; margin: 4px 0 10px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eceef2;
  vertical-align: top; }
th { color: #5b6472; font-weight: 600; }
.empty { color: #8a93a0; font-style: italic; }
svg text { font-size: 12px; }
.node rect { fill: #e8f0fe; stroke: #3b6fd8; stroke-width: 1.5; }
.node.gateway rect { fill: #fff3dc; stroke: #c98a12; }
.node.unknown rect { fill: #f0f0f0; stroke: #999; stroke-dasharray: 4 3; }
.node .app { font-weight: 600; }
.node .version { fill: #5b6472; }
.edge path { fill: none; stroke: #6b7788; stroke-width: 1.5; }
.edge.active path { stroke: #2e9d55; stroke-width: 2.5; }
.edge.errors path { stroke: #d33c3c; }
.edge text { fill: #1d2330; font-size: 11px; paint-order: stroke; stroke: #fff;
  stroke-width: 4px; stroke-linejoin: round; }
.edge .lock { fill: #2e9d55; }
.ok { color: #2e9d55; } .bad { color: #d33c3c; }
</style>
</head>
<body>
<header><h1>meshbox</h1><span class="status" id="status">loading…</span></header>
<main>
<section><h2>Service graph</h2><div id="graph"><p class="empty">no traffic yet</p></div></section>
<section><h2>Traffic</h2><div id="traffic"></div></section>
<section><h2>Services</h2><div id="services"></div></section>
<section><h2>Workloads</h2><div id="workloads"></div></section>
<section><h2>Endpoints</h2><div id="endpoints"></div></section>
<section><h2>Routes</h2><div id="routes"></div></section>
<section><h2>Policies</h2><div id="policies"></div></section>
</main>
<script>
'use strict';
const POLL_MS = 2000, WINDOW_MS = 10000, SVG = 'http://www.w3.org/2000/svg';
let history = [];  // snapshots of /stats/edges, oldest first

function quantile(q, bounds, cum) {
  if (!(q >= 0 && q <= 1) || cum.length !== bounds.length + 1 || !bounds.length) return NaN;
  const total = cum[cum.length - 1];
  if (total <= 0) return NaN;
  const rank = q * total;
  let b = 0;
  while (b < cum.length - 1 && cum[b] < rank) b++;
  if (b === bounds.length) return bounds[bounds.length - 1];
  if (b === 0 && bounds[0] <= 0) return bounds[0];
  const start = b === 0 ? 0 : bounds[b - 1], below = b === 0 ? 0 : cum[b - 1];
  const count = cum[b] - below;
  if (count <= 0) return bounds[b];
  return start + (bounds[b] - start) * ((rank - below) / count);
}

function edgeKey(e) {
  return [e.source_namespace, e.source_workload, e.source_version, e.destination_namespace,
    e.destination_workload, e.destination_version, e.destination_service].join('|');
}

// Edges with rate, error % and quantiles over the window.
function edgeRates() {
  const now = history[history.length - 1], old = history[0];
  const before = new Map();
  if (old !== now) for (const e of old.edges) before.set(edgeKey(e), e);
  const secs = Math.max((now.timestamp_ms - old.timestamp_ms) / 1000, 0.001);
  return now.edges.map(e => {
    let p = before.get(edgeKey(e));
    if (p && p.requests > e.requests) p = undefined;  // a restart: counters start over
    const dreq = old === now ? 0 : e.requests - (p ? p.requests : 0);
    const derr = old === now ? 0 : e.errors - (p ? p.errors : 0);
    let buckets = e.duration_buckets.map((n, i) =>
      n - (p && p.duration_buckets.length === e.duration_buckets.length ? p.duration_buckets[i] : 0));
    if (old === now) buckets = buckets.map(() => 0);
    return Object.assign({}, e, {
      rate: dreq / secs,
      error_pct: dreq > 0 ? 100 * derr / dreq : 0,
      p50: quantile(0.5, now.bounds, buckets),
      p99: quantile(0.99, now.bounds, buckets),
    });
  });
}

function el(tag, attrs, ...kids) {
  const n = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4))
                                   : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
  for (const k of kids) n.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return n;
}

function table(id, header, rows) {
  const box = document.getElementById(id);
  if (!rows.length) { box.replaceChildren(el('p', {class: 'empty'}, 'none')); return; }
  const t = el('table', {}, el('thead', {}, el('tr', {}, ...header.map(h => el('th', {}, h)))));
  const body = el('tbody');
  for (const r of rows) body.append(el('tr', {}, ...r.map(c => el('td', {}, c))));
  t.append(body);
  box.replaceChildren(t);
}

function ms(v) { return isNaN(v) ? '-' : v < 10 ? v.toFixed(2) + 'ms' : v.toFixed(0) + 'ms'; }
function nodeId(ns, w) { return ns + '/' + w; }

function drawGraph(edges, gateways) {
  const nodes = new Map();
  const node = (ns, w, app, version) => {
    const id = nodeId(ns, w);
    if (!nodes.has(id)) nodes.set(id, {id, ns, w, app, version, out: [], depth: 0});
    const n = nodes.get(id);
    if (n.app === 'unknown' && app !== 'unknown') n.app = app;
    if (n.version === 'unknown' && version !== 'unknown') n.version = version;
    return n;
  };
  for (const e of edges) {
    const s = node(e.source_namespace, e.source_workload, e.source_app, e.source_version);
    const d = node(e.destination_namespace, e.destination_workload, e.destination_app,
                   e.destination_version);
    s.out.push(d);
  }
  // Depth: the longest call chain from a caller nobody calls (bounded: cycles stop).
  for (let i = 0; i < nodes.size; i++)
    for (const n of nodes.values())
      for (const d of n.out) if (d !== n && d.depth < n.depth + 1 && n.depth + 1 < nodes.size)
        d.depth = n.depth + 1;
  const columns = [];
  for (const n of [...nodes.values()].sort((a, b) => a.id.localeCompare(b.id)))
    (columns[n.depth] = columns[n.depth] || []).push(n);
  const W = 150, H = 44, DX = 420, DY = 90;
  let rows = 0;
  columns.forEach((col, x) => col.forEach((n, y) => { n.x = 20 + x * DX; n.y = 20 + y * DY; }));
  for (const c of columns) if (c) rows = Math.max(rows, c.length);
  const width = 40 + Math.max(columns.length - 1, 0) * DX + W;
  const height = 40 + Math.max(rows - 1, 0) * DY + H;
  // Scaled down to the page's width when wider.
  const svg = el('svg:svg', {viewBox: `0 0 ${width} ${height}`, width: '100%', id: 'graph-svg',
                             style: `max-width: ${width}px`});
  svg.append(el('svg:defs', {}, el('svg:marker', {id: 'arrow', viewBox: '0 0 10 10', refX: 10,
    refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse'},
    el('svg:path', {d: 'M0,0 L10,5 L0,10 z', fill: '#6b7788'}))));
  for (const e of edges) {
    const s = nodes.get(nodeId(e.source_namespace, e.source_workload));
    const d = nodes.get(nodeId(e.destination_namespace, e.destination_workload));
    const x1 = s.x + W, y1 = s.y + H / 2, x2 = d.x, y2 = d.y + H / 2;
    const path = s === d ? `M${x1},${y1} C${x1 + 60},${y1 - 60} ${x2 - 60},${y2 - 60} ${x2},${y2}`
      : `M${x1},${y1} C${(x1 + x2) / 2},${y1} ${(x1 + x2) / 2},${y2} ${x2},${y2}`;
    const cls = 'edge' + (e.rate > 0 ? ' active' : '') + (e.error_pct > 0 ? ' errors' : '');
    const g = el('svg:g', {class: cls, 'data-source': e.source_workload,
      'data-source-app': e.source_app, 'data-source-version': e.source_version,
      'data-destination': e.destination_workload, 'data-destination-app': e.destination_app,
      'data-destination-version': e.destination_version,
      'data-service': e.destination_service, 'data-rate': e.rate.toFixed(3),
      'data-error-pct': e.error_pct.toFixed(2), 'data-p99': isNaN(e.p99) ? '' : e.p99.toFixed(3),
      'data-mtls': e.mtls ? 'true' : 'false'},
      el('svg:path', {d: path, 'marker-end': 'url(#arrow)'}));
    const mx = (x1 + x2) / 2, my = (y1 + y2) / 2 - 6;
    const label = `${e.rate.toFixed(1)} rps · ${e.error_pct.toFixed(1)}% err · p99 ${ms(e.p99)}`;
    g.append(el('svg:text', {x: mx, y: my, 'text-anchor': 'middle'}, label));
    if (e.mtls) {
      const lx = mx - label.length * 2.9 - 16, ly = my - 10;
      g.append(el('svg:g', {class: 'lock', transform: `translate(${lx},${ly})`},
        el('svg:title', {}, 'mutual TLS'),
        el('svg:path', {d: 'M3,5 v-2 a3,3 0 0 1 6,0 v2', fill: 'none', stroke: '#2e9d55',
                        'stroke-width': 1.5}),
        el('svg:rect', {x: 1, y: 5, width: 10, height: 7, rx: 1})));
    }
    svg.append(g);
  }
  for (const n of nodes.values()) {
    const kind = n.w === 'unknown' ? ' unknown' : gateways.has(n.w) ? ' gateway' : '';
    svg.append(el('svg:g', {class: 'node' + kind, 'data-workload': n.w, 'data-namespace': n.ns,
      'data-app': n.app, 'data-version': n.version, transform: `translate(${n.x},${n.y})`},
      el('svg:rect', {width: W, height: H, rx: 6}),
      el('svg:text', {x: 10, y: 18, class: 'app'}, n.app === 'unknown' ? n.w : n.app),
      el('svg:text', {x: 10, y: 34, class: 'version'},
        (n.version === 'unknown' ? '' : n.version + ' · ') + n.w)));
  }
  const box = document.getElementById('graph');
  if (!nodes.size) box.replaceChildren(el('p', {class: 'empty'}, 'no traffic yet'));
  else box.replaceChildren(svg);
}

async function getJson(path) {
  const r = await fetch(path, {cache: 'no-store'});
  if (!r.ok) return Promise.reject(new Error(path + ': HTTP ' + r.status));
  return r.json();
}

async function poll() {
  try {
    const [edges, services, workloads, endpoints, routes, config] = await Promise.all([
      getJson('/stats/edges'), getJson('/services'), getJson('/workloads'),
      getJson('/endpoints'), getJson('/routes'), getJson('/config')]);
    history.push(edges);
    while (history.length > 2 && edges.timestamp_ms - history[1].timestamp_ms >= WINDOW_MS)
      history.shift();
    const rated = edgeRates();
    const resources = config.resources || [];
    const gateways = new Set(resources.filter(r => r.kind === 'gateway').map(r => r.name));
    drawGraph(rated, gateways);
    table('traffic', ['source', 'destination', 'service', 'requests/s', 'success', 'p50', 'p99',
                      'mTLS', 'total'],
      [...rated].sort((a, b) => b.rate - a.rate).map(e => [
        `${e.source_workload} (${e.source_version})`,
        `${e.destination_workload} (${e.destination_version})`, e.destination_service,
        e.rate.toFixed(2), (100 - e.error_pct).toFixed(1) + '%', ms(e.p50), ms(e.p99),
        e.mtls ? 'yes' : 'no', e.requests]));
    table('services', ['name', 'namespace', 'kind', 'host', 'ports', 'healthy'],
      services.map(s => [s.name, s.namespace, s.kind, s.host,
        s.ports.map(p => `${p.number}/${p.protocol}`).join(', '), `${s.healthy}/${s.endpoints}`]));
    table('workloads', ['instance', 'workload', 'namespace', 'service', 'state', 'ready',
                        'restarts'],
      workloads.map(w => [w.instance, w.workload, w.namespace, w.service, w.state,
        w.ready ? 'yes' : 'no', w.restarts]));
    table('endpoints', ['host', 'address', 'labels', 'healthy', 'source'],
      endpoints.map(e => [e.host, `${e.address}:${e.port}`,
        Object.entries(e.labels).map(([k, v]) => `${k}=${v}`).join(', '),
        e.healthy ? 'yes' : 'no', e.source]));
    table('routes', ['listener', 'address', 'virtual host', 'route', 'match', 'action'],
      routes.map(r => [r.listener, r.address, r.virtual_host, r.route, r.match, r.action]));
    const policyKinds = ['authorization_policy', 'request_authentication', 'peer_authentication',
                         'destination_rule', 'rate_limit', 'local_rate_limit'];
    table('policies', ['kind', 'namespace', 'name', 'origin', 'spec'],
      resources.filter(r => policyKinds.includes(r.kind) || r.kind.endsWith('policy'))
        .map(r => [r.kind, r.namespace, r.name, r.origin, JSON.stringify(r.spec || {})]));
    document.getElementById('status').textContent =
      `updated ${new Date(edges.timestamp_ms).toLocaleTimeString()} · ${rated.length} edges`;
  } catch (err) {
    document.getElementById('status').textContent = 'error: ' + err.message;
  }
  setTimeout(poll, POLL_MS);
}
poll();
</script>
</body>
</html>
)HTML";

}  // namespace

std::string_view dashboard_html() {
  return kPage;
}

}  // namespace meshbox::control
