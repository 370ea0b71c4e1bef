// The `testbed ui` page: the topology model (/api/topology, the same JSON as `testbed topology
// --format json`) drawn by cytoscape, with per-link traffic from /api/traffic every few seconds.
// The side lists are rendered from cytoscape's own elements once laid out, so what they say is
// what the graph holds (and a headless browser test can read it from the DOM).
"use strict";

const state = { cy: null, model: null, settings: null, updates: 0 };

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function rate(bps) {
  if (bps === null || bps === undefined) return "–";
  const units = ["b/s", "kb/s", "Mb/s", "Gb/s", "Tb/s"];
  let v = bps, k = 0;
  while (v >= 1000 && k < units.length - 1) { v /= 1000; k += 1; }
  return `${v.toFixed(v >= 100 || k === 0 ? 0 : 1)} ${units[k]}`;
}

// Throughput -> edge width (log scale: 1 kb/s and 10 Gb/s both readable) and colour (grey to red).
function width(bps) { return bps > 0 ? Math.min(16, 2 + 1.4 * Math.log10(1 + bps / 1000)) : 2; }
function colour(bps) {
  if (!(bps > 0)) return "#adb5bd";
  const t = Math.min(1, Math.log10(1 + bps / 1000) / 7); // 10 Gb/s -> 1
  const from = [253, 186, 116], to = [214, 40, 40];
  const c = from.map((f, i) => Math.round(f + (to[i] - f) * t));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function elements(model, colours) {
  const out = [];
  for (const res of model.reservations) {
    const sites = res.sites.length ? ` (sites: ${res.sites.join(", ")})` : "";
    out.push({ data: { id: `res:${res.name}`, kind: "reservation", label: `reservation ${res.name} on ${res.backend}${sites}` } });
    const combos = new Map();
    for (const h of model.hosts.filter((x) => x.reservation === res.name)) {
      const key = h.roles.join(", ") || "none";
      if (!combos.has(key)) {
        const id = `roles:${res.name}:${key}`;
        combos.set(key, id);
        out.push({ data: { id, parent: `res:${res.name}`, kind: "roles", label: `roles: ${key}`, fill: colours[h.roles[0]] || "#e9ecef" } });
      }
      const lines = [h.name, h.address];
      if (h.site) lines.push(`site: ${h.site}`);
      if (model.monitoring.some((m) => m.host === h.id)) lines.push("metrics collector");
      out.push({ data: { id: h.id, parent: combos.get(key), kind: "host", name: h.name, roles: h.roles.join(", "), address: h.address, label: lines.join("\n") } });
    }
    for (const n of model.networks.filter((x) => x.reservation === res.name)) {
      const lines = [n.label];
      if (n.cidr) lines.push(n.cidr);
      if (n.vlan) lines.push(`${n.vlanType || "kavlan"} vlan ${n.vlan}`);
      if (n.spansSites) lines.push(`spans sites: ${n.sites.join(", ")}`);
      else if (n.sites.length) lines.push(`site: ${n.sites.join(", ")}`);
      out.push({ data: { id: n.id, parent: `res:${res.name}`, kind: n.kind, name: n.label, cidr: n.cidr || "", spans: n.spansSites ? n.sites.join(", ") : "", label: lines.join("\n") } });
    }
  }
  for (const l of model.links) {
    out.push({ data: { id: l.id, source: l.host, target: l.network, kind: "link", interface: l.interface || "", address: l.address, width: 2, colour: "#adb5bd", label: "", rx: null, tx: null } });
  }
  return out;
}

const STYLE = [
  { selector: "node", style: { label: "data(label)", "text-wrap": "wrap", "font-size": 10, "text-valign": "center", "text-halign": "center" } },
  { selector: 'node[kind = "reservation"]', style: { "background-opacity": 0.03, "border-style": "dashed", "text-valign": "top", "font-size": 12 } },
  { selector: 'node[kind = "roles"]', style: { "background-color": "data(fill)", "border-color": "#888", shape: "round-rectangle", "text-valign": "top", "font-size": 11 } },
  { selector: 'node[kind = "host"]', style: { shape: "round-rectangle", "background-color": "#fff", "border-width": 1, "border-color": "#333", width: 110, height: 44 } },
  { selector: 'node[kind = "management"]', style: { shape: "ellipse", "background-color": "#f1f3f5", "border-style": "dashed", "border-width": 1, width: 150, height: 50 } },
  { selector: 'node[kind = "experiment"]', style: { shape: "ellipse", "background-color": "#fff9db", "border-width": 1, width: 150, height: 50 } },
  { selector: 'node[kind = "experiment"][spans != ""]', style: { "background-color": "#ffd8a8" } },
  { selector: "edge", style: { width: "data(width)", "line-color": "data(colour)", label: "data(label)", "font-size": 9, "text-rotation": "autorotate", "text-background-color": "#fff", "text-background-opacity": 0.8, "curve-style": "bezier" } },
];

function renderLists(cy) {
  const hosts = document.getElementById("hosts");
  hosts.replaceChildren();
  cy.nodes('[kind = "host"]').forEach((n) => {
    const p = n.renderedPosition();
    hosts.appendChild(el("li", { "data-id": n.id(), "data-name": n.data("name"), "data-x": p.x.toFixed(0), "data-y": p.y.toFixed(0) }, `${n.data("name")} — roles: ${n.data("roles")} — ${n.data("address")}`));
  });
  const nets = document.getElementById("networks");
  nets.replaceChildren();
  cy.nodes('[kind = "management"], [kind = "experiment"]').forEach((n) => {
    const spans = n.data("spans") ? ` — spans sites: ${n.data("spans")}` : "";
    nets.appendChild(el("li", { "data-id": n.id(), "data-name": n.data("name") }, `${n.data("name")} ${n.data("cidr")}${spans}`));
  });
  const body = document.querySelector("#links tbody");
  body.replaceChildren();
  cy.edges().forEach((e) => {
    const tr = el("tr", { "data-id": e.id(), "data-rx": "", "data-tx": "" });
    tr.appendChild(el("td", {}, e.source().data("name")));
    tr.appendChild(el("td", {}, e.target().data("name")));
    tr.appendChild(el("td", {}, e.data("interface") || "?"));
    tr.appendChild(el("td", {}, e.data("address")));
    tr.appendChild(el("td", { class: "rate rx" }, "–"));
    tr.appendChild(el("td", { class: "rate tx" }, "–"));
    body.appendChild(tr);
  });
}

function showTraffic(answer) {
  const cy = state.cy;
  const status = document.getElementById("status");
  let max = 0;
  cy.batch(() => {
    cy.edges().forEach((e) => {
      const t = answer.links[e.id()];
      const rx = t ? t.rxBps : null, tx = t ? t.txBps : null;
      const total = (rx || 0) + (tx || 0);
      max = Math.max(max, total);
      e.data({ rx, tx, width: width(total), colour: colour(total), label: t ? `↓${rate(rx)} ↑${rate(tx)}` : "" });
    });
  });
  document.querySelectorAll("#links tbody tr").forEach((tr) => {
    const e = cy.getElementById(tr.dataset.id);
    tr.dataset.rx = e.data("rx") ?? "";
    tr.dataset.tx = e.data("tx") ?? "";
    tr.querySelector(".rx").textContent = rate(e.data("rx"));
    tr.querySelector(".tx").textContent = rate(e.data("tx"));
  });
  state.updates += 1;
  document.body.dataset.traffic = answer.status;
  document.body.dataset.trafficUpdates = String(state.updates);
  document.body.dataset.trafficMax = String(max);
  status.classList.toggle("error", answer.status === "error");
  const when = new Date(answer.time * 1000).toLocaleTimeString();
  if (answer.status === "ok") {
    status.textContent = `traffic from ${state.settings.collector}, updated ${when}` + (answer.message ? ` (${answer.message})` : "");
  } else {
    status.textContent = answer.message || "no traffic data";
  }
  if (answer.queries && state.settings.prometheus && !document.getElementById("prom-rx")) {
    const out = document.getElementById("links-out");
    const graph = (id, q, text) => el("a", { id, href: `${state.settings.prometheus}graph?g0.expr=${encodeURIComponent(q)}&g0.tab=0&g0.range_input=15m`, target: "_blank" }, text);
    out.append("Prometheus: ", el("a", { id: "prom-ui", href: state.settings.prometheus, target: "_blank" }, "its UI"), " · ",
      el("a", { href: `${state.settings.prometheus}targets`, target: "_blank" }, "targets"), " · ",
      graph("prom-rx", answer.queries.rx, "received bits/s"), " · ", graph("prom-tx", answer.queries.tx, "transmitted bits/s"));
  }
}

async function poll() {
  try {
    const resp = await fetch("/api/traffic", { cache: "no-store" });
    showTraffic(await resp.json());
  } catch (err) {
    document.body.dataset.traffic = "error";
    document.getElementById("status").textContent = `the testbed ui server does not answer: ${err}`;
  } finally {
    setTimeout(poll, state.settings.refreshSeconds * 1000);
  }
}

async function main() {
  const resp = await fetch("/api/topology", { cache: "no-store" });
  const { model, settings } = await resp.json();
  state.model = model;
  state.settings = settings;
  document.getElementById("stack").textContent = `stack ${model.stack}`;
  document.getElementById("refresh").textContent = String(settings.refreshSeconds);
  const cy = cytoscape({
    container: document.getElementById("graph"),
    elements: elements(model, settings.colours),
    style: STYLE,
    layout: { name: "cose", animate: false, nodeDimensionsIncludeLabels: true, randomize: false },
  });
  state.cy = cy;
  window.testbedCy = cy; // for a look from the devtools console
  renderLists(cy);
  document.body.dataset.state = "ready";
  document.body.dataset.nodes = String(cy.nodes('[kind = "host"]').length);
  if (!settings.collector) {
    document.body.dataset.traffic = "no-monitoring";
    document.getElementById("status").textContent = settings.note;
  }
  poll();
}

main().catch((err) => {
  document.body.dataset.state = "error";
  const status = document.getElementById("status");
  status.classList.add("error");
  status.textContent = `could not draw the topology: ${err}`;
});
