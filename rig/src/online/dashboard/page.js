// twinloop dashboard client: listens to /events (one JSON snapshot per
// message) and redraws every panel. Plain DOM + inline SVG, no libraries.
"use strict";

const PARAMS = new URLSearchParams(location.search);
const TOKEN = PARAMS.get("token");
// ?stop_after=N: stop listening after N snapshots and keep the page as it is
// (for captures, e.g. headless Chromium, whose virtual time waits for
// network fetches and so would wait forever on a live stream).
const STOP_AFTER = parseInt(PARAMS.get("stop_after") || "0", 10) || 0;
const QUERY = TOKEN ? "token=" + encodeURIComponent(TOKEN) : "";
const url = (path, extra) => {
  const q = [extra, QUERY].filter(Boolean).join("&");
  return q ? path + "?" + q : path;
};
const $ = (id) => document.getElementById(id);
const SVGNS = "http://www.w3.org/2000/svg";
const PALETTE = ["#f6c945", "#4fc3f7", "#ef5350", "#81c784", "#ba68c8", "#ff8a65", "#4db6ac", "#e0e0e0"];
const MODE_COLOURS = ["#4fc3f7", "#f6c945", "#81c784", "#ef5350", "#ba68c8", "#ff8a65", "#4db6ac", "#e0e0e0"];

let lastMessage = 0;
let messages = 0;
let frameVersion = null;
let viewVersion = null;

function fmt(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v) && digits === undefined) return String(v);
  const d = digits === undefined ? 3 : digits;
  return Math.abs(v) >= 1000 ? v.toFixed(0) : v.toPrecision(d);
}

// Rig time in seconds.
function fmtT(t) {
  return t === null || t === undefined ? "–" : t.toFixed(2);
}

function setText(id, text) {
  const el = $(id);
  if (el && el.textContent !== String(text)) el.textContent = String(text);
}

function el(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function extent(arrays, fallback) {
  let lo = Infinity, hi = -Infinity;
  for (const a of arrays) for (const v of a) {
    if (v === null || v === undefined || !Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo === Infinity) return fallback || [0, 1];
  if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
  return [lo, hi];
}

// Polyline points for (x, y) pairs, split at nulls.
function segments(xs, ys, sx, sy) {
  const out = [];
  let cur = [];
  for (let i = 0; i < xs.length && i < ys.length; i++) {
    const x = xs[i], y = ys[i];
    if (x === null || y === null || !Number.isFinite(x) || !Number.isFinite(y)) {
      if (cur.length) out.push(cur);
      cur = [];
      continue;
    }
    cur.push(sx(x).toFixed(1) + "," + sy(y).toFixed(1));
  }
  if (cur.length) out.push(cur);
  return out;
}

// Draws line series into an SVG with a viewBox of w x h.
// opts: {series: [{x, y, colour, dash, dots}], xRange, yRange, xLabels, yFixed}
function lineChart(svg, opts) {
  const vb = svg.viewBox.baseVal;
  const w = vb && vb.width ? vb.width : 400, h = vb && vb.height ? vb.height : 110;
  const padL = opts.padLeft === undefined ? 34 : opts.padLeft, padR = 4, padT = 4, padB = opts.xLabels ? 12 : 4;
  const [x0, x1] = opts.xRange;
  const [y0, y1] = opts.yRange || extent(opts.series.map((s) => s.y));
  const sx = (x) => padL + ((x - x0) / (x1 - x0 || 1)) * (w - padL - padR);
  const sy = (y) => h - padB - ((y - y0) / (y1 - y0 || 1)) * (h - padT - padB);
  svg.replaceChildren();
  svg.appendChild(el("rect", { x: padL, y: padT, width: w - padL - padR, height: h - padT - padB, fill: "none", stroke: "#2c333d" }));
  if (padL > 0) {
    svg.appendChild(el("text", { x: padL - 3, y: padT + 8, "text-anchor": "end" }, fmt(y1)));
    svg.appendChild(el("text", { x: padL - 3, y: h - padB, "text-anchor": "end" }, fmt(y0)));
  }
  if (y0 < 0 && y1 > 0) {
    svg.appendChild(el("line", { x1: padL, x2: w - padR, y1: sy(0), y2: sy(0), stroke: "#3a424d", "stroke-dasharray": "2 3" }));
  }
  if (opts.xLabels) {
    svg.appendChild(el("text", { x: padL, y: h - 1 }, opts.xLabels[0]));
    svg.appendChild(el("text", { x: w - padR, y: h - 1, "text-anchor": "end" }, opts.xLabels[1]));
  }
  for (const s of opts.series) {
    for (const seg of segments(s.x, s.y, sx, sy)) {
      const attrs = { points: seg.join(" "), fill: "none", stroke: s.colour, "stroke-width": s.width || 1.2 };
      if (s.dash) attrs["stroke-dasharray"] = "4 3";
      if (seg.length === 1) {
        const [cx, cy] = seg[0].split(",");
        svg.appendChild(el("circle", { cx, cy, r: 1.5, fill: s.colour }));
      } else {
        svg.appendChild(el("polyline", attrs));
      }
    }
    if (s.dots) {
      for (let i = 0; i < s.x.length; i++) {
        if (s.y[i] === null || s.y[i] === undefined) continue;
        svg.appendChild(el("circle", { cx: sx(s.x[i]).toFixed(1), cy: sy(s.y[i]).toFixed(1), r: 2, fill: s.dots[i] }));
      }
    }
  }
}

function timeAxis(snap, t) {
  const now = snap.t_s === null ? (t.length ? t[t.length - 1] : 0) : snap.t_s;
  const hist = snap.history_s || 30;
  return { x: t.map((v) => v - now), range: [-hist, 0], labels: ["−" + fmt(hist) + " s", "now"] };
}

function drawFrame(snap) {
  const f = snap.frame;
  setText("frame-count", f.frames);
  setText("cell-count", f.n_cells);
  if (f.width !== null) {
    setText("frame-size", f.src_width + "×" + f.src_height + (f.scale > 1 ? " (÷" + f.scale + ")" : ""));
    if (frameVersion !== f.version) {
      frameVersion = f.version;
      $("frame-img").src = url("frame.png", "v=" + f.version);
      $("frame-empty").style.display = "none";
    }
    const ov = $("frame-overlay");
    ov.setAttribute("viewBox", "0 0 " + f.width + " " + f.height);
    ov.setAttribute("preserveAspectRatio", "none");
    ov.replaceChildren();
    f.selected.forEach((c, i) => {
      ov.appendChild(el("text", {
        x: c.x + c.r + 1, y: c.y - c.r, fill: PALETTE[i % PALETTE.length],
        "font-size": Math.max(6, f.width / 28), "font-weight": "bold",
      }, String(c.cell)));
    });
  }
  const ax = timeAxis(snap, f.shifts.t);
  lineChart($("shifts-chart"), {
    xRange: ax.range, xLabels: ax.labels,
    series: [
      { x: ax.x, y: f.shifts.dy, colour: "#f6c945" },
      { x: ax.x, y: f.shifts.dx, colour: "#4fc3f7" },
    ],
  });
}

function drawTraces(snap) {
  const tr = snap.traces;
  const box = $("traces-chart");
  setText("traces-info",
    tr.cells.length
      ? tr.cells.length + " of " + tr.n_cells + " cells, " +
        (tr.by_variance ? "highest activity variance" : "first cells (not enough data yet)") +
        "; each row scaled to its own range"
      : "no cells yet");
  while (box.children.length > tr.cells.length) box.lastChild.remove();
  const act = timeAxis(snap, tr.activity.t);
  const pred = timeAxis(snap, tr.prediction.t);
  tr.cells.forEach((cell, i) => {
    let row = box.children[i];
    if (!row) {
      row = document.createElement("div");
      row.className = "trace-row";
      row.appendChild(document.createElement("span"));
      const svg = document.createElementNS(SVGNS, "svg");
      svg.setAttribute("viewBox", "0 0 400 46");
      svg.setAttribute("preserveAspectRatio", "none");
      row.appendChild(svg);
      box.appendChild(row);
    }
    const colour = PALETTE[i % PALETTE.length];
    const a = tr.activity.values[i] || [];
    const p = tr.prediction.values[i] || [];
    const label = row.firstChild;
    label.textContent = "cell " + cell;
    label.style.color = colour;
    const last = a.length ? a[a.length - 1] : null;
    label.title = "latest activity " + fmt(last) + ", variance " + fmt(tr.variance[i]);
    const ya = extent([a]);
    const yp = extent([p]);
    // Prediction drawn in its own range, mapped onto the activity range.
    const pm = p.map((v) => (v === null ? null : ya[0] + ((v - yp[0]) / (yp[1] - yp[0])) * (ya[1] - ya[0])));
    lineChart(row.lastChild, {
      padLeft: 0, xRange: act.range, yRange: ya,
      series: [
        { x: pred.x, y: pm, colour, dash: true, width: 1 },
        { x: act.x, y: a, colour, width: 1.4 },
      ],
    });
  });
}

function drawStimulus(snap) {
  const s = snap.stimulus;
  setText("stim-name", s.name === null ? "–" : s.name);
  setText("stim-trial", s.trial === null ? "–" : s.trial);
  setText("view-trial", s.view_trial < 0 ? "none" : s.view_trial);
  if (s.width !== null && viewVersion !== s.view_version) {
    viewVersion = s.view_version;
    $("view-img").src = url("view.png", "v=" + s.view_version);
    $("view-empty").style.display = "none";
  }
  setText("next-name", s.next ? s.next.name : "–");
  setText("next-trial", s.next ? s.next.trial : "–");
  setText("next-mode", s.next ? s.next.mode : "–");
  const list = $("queue-list");
  const items = s.queue.slice(1, 6).map((q) => "trial " + q.trial + ": " + q.name + " (" + q.mode + ")");
  const html = items.map((t) => "<li></li>").join("");
  if (list.children.length !== items.length) list.innerHTML = html;
  items.forEach((t, i) => { if (list.children[i].textContent !== t) list.children[i].textContent = t; });
}

function drawLatency(snap) {
  const body = $("latency-table").tBodies[0];
  while (body.rows.length > snap.latency.length) body.deleteRow(-1);
  snap.latency.forEach((st, i) => {
    let row = body.rows[i];
    if (!row) {
      row = body.insertRow();
      for (let k = 0; k < 3; k++) row.insertCell();
      const svg = document.createElementNS(SVGNS, "svg");
      svg.setAttribute("viewBox", "0 0 300 24");
      svg.setAttribute("preserveAspectRatio", "none");
      row.insertCell().appendChild(svg);
    }
    row.cells[0].textContent = st.stage;
    row.cells[1].textContent = fmt(st.p50_ms);
    row.cells[2].textContent = fmt(st.p99_ms);
    const svg = row.cells[3].firstChild;
    svg.replaceChildren();
    const n = st.histogram.length;
    const max = Math.max(1, ...st.histogram.map((b) => b[1]));
    const bw = 300 / Math.max(1, n);
    st.histogram.forEach(([edge, count], k) => {
      const hgt = count > 0 ? Math.max(1, (count / max) * 22) : 0;
      const bar = el("rect", { x: (k * bw).toFixed(1), y: (24 - hgt).toFixed(1), width: Math.max(0.5, bw - 0.5).toFixed(1), height: hgt.toFixed(1), fill: edge > st.p99_ms ? "#ef5350" : "#4fc3f7" });
      bar.appendChild(el("title", {}, "≤ " + fmt(edge) + " ms: " + count));
      svg.appendChild(bar);
    });
  });
}

const COUNTERS = {
  "counter-frames": ["frames"],
  "counter-drops": ["drops", "dropped", "frames_dropped", "drop"],
  "counter-skips": ["skips", "skipped", "skip"],
  "counter-underruns": ["underruns", "underrun"],
  "counter-late": ["late_decisions", "late", "decisions_late"],
  "counter-anomalies": ["anomalies"],
};

function drawCounters(snap) {
  const c = snap.counters;
  const used = new Set();
  for (const [id, names] of Object.entries(COUNTERS)) {
    const name = names.find((n) => n in c.values);
    let v = name === undefined ? null : c.values[name];
    if (name !== undefined) used.add(name);
    if (id === "counter-anomalies") v = Math.max(v || 0, c.anomalies);
    setText(id, fmt(v));
    const tile = $(id).parentElement;
    tile.classList.toggle("alert", id !== "counter-frames" && typeof v === "number" && v > 0);
  }
  const others = Object.entries(c.values).filter(([k]) => !used.has(k));
  const table = $("counters-other");
  const html = others.map(([k, v]) => "<tr><td></td><td></td></tr>").join("");
  if (table.rows.length !== others.length) table.innerHTML = html;
  others.forEach(([k, v], i) => {
    table.rows[i].cells[0].textContent = k;
    table.rows[i].cells[1].textContent = fmt(v);
  });
  const list = $("anomaly-list");
  const msgs = c.recent_anomalies.map((a) => (a.t_s === null ? "" : "t=" + fmtT(a.t_s) + " s: ") + a.message);
  if (!msgs.length) msgs.push(null);
  if (list.children.length !== msgs.length) list.innerHTML = msgs.map(() => "<li></li>").join("");
  msgs.forEach((m, i) => {
    const li = list.children[i];
    li.className = m === null ? "dim" : "";
    li.textContent = m === null ? "none" : m;
  });
}

function drawAccuracy(snap) {
  const a = snap.accuracy;
  setText("accuracy-latest", a.latest ? fmt(a.latest.cc_norm) + " after " + a.latest.trials + " trials" : "–");
  const xr = a.trials.length ? [a.trials[0], Math.max(a.trials[a.trials.length - 1], a.trials[0] + 1)] : [0, 1];
  const yr = extent([a.cc_norm], [0, 1]);
  lineChart($("accuracy-chart"), {
    xRange: xr, yRange: [Math.min(0, yr[0]), Math.max(1, yr[1])], xLabels: ["trial " + xr[0], "trial " + xr[1]],
    series: [{ x: a.trials, y: a.cc_norm, colour: "#81c784", width: 1.6 }],
  });
}

function drawDecisions(snap) {
  const d = snap.decisions;
  setText("decision-count", d.count);
  setText("decision-latest", d.latest ? "trial " + d.latest.trial + ": " + d.latest.name + " (" + d.latest.mode + ", score " + fmt(d.latest.score) + ")" : "–");
  const xr = d.trial.length ? [d.trial[0], Math.max(d.trial[d.trial.length - 1], d.trial[0] + 1)] : [0, 1];
  lineChart($("decisions-chart"), {
    xRange: xr, xLabels: ["trial " + xr[0], "trial " + xr[1]],
    series: [{ x: d.trial, y: d.score, colour: "#56606b", width: 1, dots: d.mode.map((m) => MODE_COLOURS[m % MODE_COLOURS.length]) }],
  });
  const legend = $("mode-legend");
  const parts = d.modes.map((m, i) => ({ m, c: MODE_COLOURS[i % MODE_COLOURS.length], n: d.mode_counts[m] }));
  if (legend.children.length !== parts.length * 2) {
    legend.replaceChildren();
    parts.forEach(() => { legend.appendChild(document.createElement("i")); legend.appendChild(document.createElement("span")); });
  }
  parts.forEach((p, i) => {
    legend.children[2 * i].style.setProperty("--c", p.c);
    legend.children[2 * i + 1].textContent = p.m + " " + p.n;
  });
}

function drawBehaviour(snap) {
  const b = snap.behaviour;
  const ax = timeAxis(snap, b.t);
  const last = (a) => (a.length ? a[a.length - 1] : null);
  setText("pupil-latest", "x " + fmt(last(b.pupil_x)) + ", y " + fmt(last(b.pupil_y)) + ", r " + fmt(last(b.pupil_radius)));
  setText("speed-latest", fmt(last(b.speed_cm_s)));
  lineChart($("pupil-chart"), {
    xRange: ax.range, xLabels: ax.labels,
    series: [
      { x: ax.x, y: b.pupil_x, colour: "#f6c945" },
      { x: ax.x, y: b.pupil_y, colour: "#4fc3f7" },
      { x: ax.x, y: b.pupil_radius, colour: "#ef5350" },
    ],
  });
  const ys = extent([b.speed_cm_s], [0, 1]);
  lineChart($("speed-chart"), {
    xRange: ax.range, xLabels: ax.labels, yRange: [Math.min(0, ys[0]), ys[1]],
    series: [{ x: ax.x, y: b.speed_cm_s, colour: "#81c784" }],
  });
}

// The Inception tile: per target its MEIs beside its controls, each with the twin's
// prediction (blue bar) and the measured mean ± SEM (yellow bar) as the verify block fills in.
// Rebuilt when its shape or images change; otherwise only its numbers are updated.
let inceptionShape = null;
const ROLE_NAMES = { mei_low: "MEI (low contrast)", mei_full: "MEI (full contrast)", best_pool: "best pool (measured)", library_best: "library best (twin)", random: "random pool" };

function drawInception(snap) {
  const inc = snap.inception;
  const panel = $("panel-inception");
  panel.hidden = !inc;
  if (!inc) return;
  setText("inception-phase", inc.phase || "–");
  const lines = inc.rounds.filter((r) => r.line).map((r) => "round " + r.round + ": " + r.line);
  setText("inception-verdict", lines.length ? lines.join(" · ") : "verdict: not yet");
  const notes = $("inception-notices");
  if (notes.children.length !== inc.notices.length) notes.innerHTML = inc.notices.map(() => "<li></li>").join("");
  inc.notices.forEach((n, i) => { notes.children[i].textContent = n; });
  const shape = inc.images_version + "|" + inc.rounds.map((r) => r.round + ":" + r.targets.map((t) => t.stimuli.length).join(",")).join(";");
  const box = $("inception-rounds");
  if (shape !== inceptionShape) {
    inceptionShape = shape;
    box.replaceChildren();
    for (const r of inc.rounds) {
      const h = document.createElement("h3");
      h.dataset.round = r.round;
      box.appendChild(h);
      for (const t of r.targets) {
        const row = document.createElement("div");
        row.className = "inc-target";
        const cell = document.createElement("div");
        cell.className = "inc-cell";
        row.appendChild(cell);
        for (const s of t.stimuli) {
          const card = document.createElement("div");
          card.className = "inc-stim " + s.role;
          const img = document.createElement("img");
          img.alt = s.id;
          img.src = url("inception.png", "round=" + r.round + "&stimulus=" + s.stimulus + "&v=" + inc.images_version);
          const label = document.createElement("div");
          const pred = document.createElement("div");
          pred.className = "bar pred";
          const meas = document.createElement("div");
          meas.className = "bar meas";
          const nums = document.createElement("div");
          card.append(img, label, pred, meas, nums);
          row.appendChild(card);
        }
        box.appendChild(row);
      }
    }
  }
  let k = 0;
  for (const r of inc.rounds) {
    const h = box.children[k++];
    h.textContent = "Round " + r.round + " — design " + r.design + ", " + r.responses + " responses measured" + (r.selectivity_p === null ? "" : ", selectivity p = " + fmt(r.selectivity_p));
    for (const t of r.targets) {
      const row = box.children[k++];
      row.children[0].textContent = "target " + t.target + ": cell " + t.cell.cell + " (plane " + t.cell.plane + "), held-out CC " + fmt(t.heldout_cc) + (t.lost ? " — LOST" : "");
      const top = Math.max(1e-9, ...t.stimuli.map((s) => Math.max(s.predicted || 0, s.measured.mean || 0)));
      t.stimuli.forEach((s, i) => {
        const card = row.children[i + 1];
        card.children[1].textContent = ROLE_NAMES[s.role] || s.role;
        card.children[2].style.width = (100 * Math.max(0, s.predicted || 0) / top) + "%";
        card.children[3].style.width = (100 * Math.max(0, s.measured.mean || 0) / top) + "%";
        card.children[4].textContent = "pred " + fmt(s.predicted) + " · meas " + (s.measured.n ? fmt(s.measured.mean) + " ± " + fmt(s.measured.sem) + " (" + s.measured.n + ")" : "–");
      });
    }
  }
}

function draw(snap) {
  setText("clock", snap.t_s === null ? "–" : fmtT(snap.t_s) + " s");
  if (snap.dashboard) setText("feed-dropped", snap.dashboard.dropped);
  const panels = [drawFrame, drawTraces, drawStimulus, drawLatency, drawCounters, drawAccuracy, drawDecisions, drawBehaviour, drawInception];
  for (const p of panels) {
    try { p(snap); } catch (e) { console.error(p.name, e); }
  }
}

function setStatus(cls, text) {
  const s = $("status");
  s.className = "status " + cls;
  setText("status", text);
}

function connect() {
  const source = new EventSource(url("events"));
  source.onopen = () => setStatus("live", "live");
  source.onmessage = (e) => {
    let snap;
    try { snap = JSON.parse(e.data); } catch (err) { console.error("bad snapshot", err); return; }
    lastMessage = Date.now();
    messages += 1;
    document.body.dataset.messages = String(messages);
    if (snap.seq !== undefined) draw(snap);
    if (STOP_AFTER && messages >= STOP_AFTER) {
      source.close();
      setStatus("paused", "paused after " + messages + " updates (stop_after)");
      return;
    }
    setStatus("live", "live");
  };
  source.onerror = () => {
    setStatus(source.readyState === EventSource.CLOSED ? "down" : "connecting", source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting…");
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  };
}

setInterval(() => {
  if (!lastMessage) return;
  const age = (Date.now() - lastMessage) / 1000;
  setText("age", age < 1 ? "now" : age.toFixed(0) + " s ago");
  // The server sends a snapshot at least every second, even when the rig is
  // quiet: a longer silence means the connection or the daemon is stuck.
  if (age > 3 && $("status").classList.contains("live")) setStatus("stale", "no updates for " + age.toFixed(0) + " s");
}, 500);

connect();
