// archbench dashboard: plain JavaScript, no build step, no dependencies.
// It talks to the same /v1 api as any client; the API key (if any) lives in sessionStorage.
"use strict";

const KEY_STORE = "archbench.apiKey";
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
// PALETTE comes from /static/palette.js (core/report/palette.py): report.png uses the same colours.
const EXAMPLE = {
  name: "cnn vs mlp",
  dataset: { name: "mnist_5k", max_samples: 600 },
  training: { epochs: 2, batch_size: 32 },
  seeds: [0, 1, 2],
  variants: [
    { name: "cnn", layers: [
      { type: "Conv2D", filters: 8, kernel_size: [3, 3], activation: "relu" },
      { type: "MaxPooling2D", pool_size: [2, 2] },
      { type: "Flatten" },
      { type: "Dense", units: 10, activation: "softmax" }] },
    { name: "mlp", layers: [
      { type: "Flatten" },
      { type: "Dense", units: 32, activation: "relu" },
      { type: "Dense", units: 10, activation: "softmax" }] },
  ],
};

let stopView = () => {};  // tears down the current view's timers and streams

// ---------- small helpers ----------

function $(sel, root = document) { return root.querySelector(sel); }
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
function fmt(x, digits = 4) {
  if (x === null || x === undefined || x === "") return "";
  return typeof x === "number" ? (Number.isInteger(x) ? String(x) : x.toFixed(digits)) : String(x);
}
// Report numbers, written exactly as core/report/format.py writes them (verdict, Markdown,
// text and PNG): levels 97.53%, differences in points +3.41, loss 0.1234, p 0.012 or
// < 0.001, effect sizes -1.23, counts 866,570.
// Python's f"{x:,.{d}f}" exactly: the double's exact value (toFixed(100) is exact) rounded
// half to even, commas between thousands, the sign of -0 kept. toLocaleString rounds some
// values differently (0.93925 is 93.92% in Python, 93.93% there).
function NUM(x, d, group = true) {
  const negative = x < 0 || Object.is(x, -0);
  const [whole, frac] = Math.abs(x).toFixed(100).split(".");
  let kept = BigInt(whole + frac.slice(0, d));
  const rest = frac.slice(d);
  if (rest[0] > "5" || (rest[0] === "5" && (/[1-9]/.test(rest.slice(1)) || kept % 2n === 1n))) kept += 1n;
  const text = kept.toString().padStart(d + 1, "0");
  const digits = text.slice(0, text.length - d);
  const int = group ? digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",") : digits;
  return (negative ? "-" : "") + (d ? `${int}.${text.slice(text.length - d)}` : int);
}
const isNum = (x) => typeof x === "number" && Number.isFinite(x);
const DASH = "\u2014";
function isLoss(report) { return report && report.primary_metric === "test_loss"; }
function fmtLevel(x, report) {
  if (!isNum(x)) return DASH;
  return isLoss(report) ? NUM(x, 4) : `${NUM(100 * x, 2)}%`;
}
function fmtGap(x, report, signed = false) {
  if (!isNum(x)) return DASH;
  const text = isLoss(report) ? NUM(x, 4) : NUM(100 * x, 2);
  return signed && !text.startsWith("-") ? `+${text}` : text;
}
function fmtLevelCI(ci, report) { return ci ? `${fmtLevel(ci[0], report)} to ${fmtLevel(ci[1], report)}` : DASH; }
function fmtGapCI(ci, report) { return ci ? `${fmtGap(ci[0], report, true)} to ${fmtGap(ci[1], report, true)}` : DASH; }
function fmtP(p) { return isNum(p) ? (p < 0.001 ? "< 0.001" : NUM(p, 3, false)) : DASH; }
function fmtEffect(g) { return isNum(g) ? NUM(g, 2, false) : DASH; }
function fmtCount(n) { return isNum(n) ? n.toLocaleString("en-US") : DASH; }
function fmtSpread(mean, std, d = 2) {
  if (!isNum(mean)) return DASH;
  return NUM(mean, d) + (isNum(std) ? ` \u00b1 ${NUM(std, d)}` : "");
}
const CONCLUSION_WORDS = { a_better: "A better", b_better: "B better" };

function apiKey() { return sessionStorage.getItem(KEY_STORE) || ""; }
function authHeaders(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}
function banner(msg) {
  const b = $("#banner");
  b.textContent = msg || "";
  b.hidden = !msg;
}

async function api(path, opts = {}) {
  const resp = await fetch(path, { ...opts, headers: authHeaders(opts.headers || {}) });
  if (resp.status === 401 || resp.status === 403) {
    banner("This server needs a valid API key: enter it at the top right.");
  }
  return resp;
}
async function apiJson(path, opts) {
  const resp = await api(path, opts);
  const body = await resp.json().catch(() => null);
  if (!resp.ok) {
    const err = new Error((body && (body.detail || body.title)) || `HTTP ${resp.status}`);
    err.status = resp.status; err.body = body;
    throw err;
  }
  return body;
}

// ---------- router ----------

function route() {
  stopView();
  stopView = () => {};
  banner("");
  const hash = location.hash || "#/";
  const view = $("#view");
  view.replaceChildren();
  const m = hash.match(/^#\/c\/([0-9a-fA-F-]{36})$/);
  if (m) return showComparison(view, m[1]);
  if (hash === "#/new") return showNew(view);
  return showList(view);
}

// ---------- list ----------

function showList(view) {
  view.append($("#tpl-list").content.cloneNode(true));
  const body = $("#comparisons tbody", view);
  let cursor = null;
  let timer = null;
  async function load(append) {
    try {
      const q = new URLSearchParams({ limit: "50" });
      if (append && cursor) q.set("cursor", cursor);
      const page = await apiJson(`/v1/comparisons?${q}`);
      if (!append) body.replaceChildren();
      for (const c of page.items) body.append(listRow(c));
      cursor = page.next_cursor;
      $("#more", view).hidden = !cursor;
      $(".empty", view).hidden = body.children.length > 0;
    } catch (e) { if (e.status !== 401) banner(`Could not load comparisons: ${e.message}`); }
  }
  $("#more", view).addEventListener("click", () => load(true));
  load(false);
  timer = setInterval(() => { if (!cursor) load(false); }, 3000);
  stopView = () => clearInterval(timer);
}

function progressBar(p) {
  const frac = p.epochs_total ? p.epochs_done / p.epochs_total : 0;
  const inner = el("div");
  inner.style.width = `${Math.round(frac * 100)}%`;
  return el("span", {}, el("span", { class: "bar" }, inner), ` ${p.epochs_done}/${p.epochs_total} epochs`);
}

function listRow(c) {
  const p = c.progress;
  return el("tr", { "data-id": c.id },
    el("td", {}, el("a", { href: `#/c/${c.id}` }, c.name)),
    el("td", {}, el("span", { class: `status ${c.status}` }, c.status)),
    el("td", {}, progressBar(p)),
    el("td", {}, `${p.trials_succeeded}/${p.trials_total}` + (p.trials_failed ? ` (${p.trials_failed} failed)` : "")),
    el("td", {}, new Date(c.created_at).toLocaleString()));
}

// ---------- submit form with located errors ----------

function showNew(view) {
  view.append($("#tpl-new").content.cloneNode(true));
  const area = $("#spec", view);
  area.value = sessionStorage.getItem("archbench.draft") || JSON.stringify(EXAMPLE, null, 2);
  $("#example", view).addEventListener("click", () => { area.value = JSON.stringify(EXAMPLE, null, 2); });
  $("#submit-form", view).addEventListener("submit", async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("archbench.draft", area.value);
    let spec;
    try { spec = JSON.parse(area.value); } catch (e) {
      return showErrors(view, null, [{ loc: ["body"], msg: `not valid JSON: ${e.message}` }]);
    }
    const resp = await api("/v1/comparisons", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(spec),
    });
    const body = await resp.json().catch(() => ({}));
    if (resp.status === 202 || resp.status === 200) {
      sessionStorage.removeItem("archbench.draft");
      location.hash = `#/c/${body.id}`;
      return;
    }
    const errors = body.errors && body.errors.length ? body.errors
      : [{ loc: ["body"], msg: body.detail || body.title || `HTTP ${resp.status}` }];
    showErrors(view, spec, errors);
  });
}

function locPath(loc) {
  // ["body", "variants", 0, "layers", 1, "kernel_size"] -> "variants.0.layers.1.kernel_size"
  const parts = loc[0] === "body" ? loc.slice(1) : loc;
  return parts.map(String).join(".");
}

function showErrors(view, spec, errors) {
  const section = $("#errors", view);
  section.hidden = false;
  const list = $("#error-list", view);
  list.replaceChildren(...errors.map((e) => el("li", { "data-loc": locPath(e.loc || []) },
    el("code", {}, (e.loc || []).join(" \u203a ")), " \u2014 ", e.msg)));
  const byPath = new Map();
  for (const e of errors) {
    // Attach each error to the deepest part of its path that exists in the pasted JSON.
    let parts = (e.loc && e.loc[0] === "body" ? e.loc.slice(1) : e.loc || []).map(String);
    let node = spec;
    let found = [];
    for (const p of parts) {
      if (node !== null && typeof node === "object" && p in node) { node = node[p]; found.push(p); } else break;
    }
    const missing = parts.slice(found.length);
    const key = found.join(".");
    const msg = missing.length ? `${missing.join(".")}: ${e.msg}` : e.msg;
    if (!byPath.has(key)) byPath.set(key, []);
    byPath.get(key).push(msg);
  }
  const tree = $("#spec-tree", view);
  tree.replaceChildren(spec === null ? el("div", { class: "node has-error" },
    el("span", { class: "field-error", "data-loc": "" }, errors.map((e) => e.msg).join("; ")))
    : renderTree(spec, [], byPath, null));
  const first = $(".field-error", tree);
  if (first) first.scrollIntoView({ block: "center" });
}

function renderTree(value, path, byPath, key) {
  const here = path.join(".");
  const errs = byPath.get(here) || [];
  const node = el("div", { class: "node" + (errs.length ? " has-error" : ""), "data-path": here });
  if (key !== null) node.append(el("span", { class: "key" }, `${key}: `));
  if (value !== null && typeof value === "object") {
    const isArr = Array.isArray(value);
    node.append(el("span", { class: "value" }, isArr ? `[${value.length}]` : "{}"));
    for (const e of errs) node.append(el("span", { class: "field-error", "data-loc": here }, e));
    for (const [k, v] of Object.entries(value)) node.append(renderTree(v, [...path, k], byPath, k));
  } else {
    node.append(el("span", { class: "value" }, JSON.stringify(value)));
    for (const e of errs) node.append(el("span", { class: "field-error", "data-loc": here }, e));
  }
  return node;
}

// ---------- comparison page ----------

function showComparison(view, id) {
  view.append($("#tpl-comparison").content.cloneNode(true));
  const state = { id, comparison: null, epochs: new Map(), trials: [], report: null, status: "" };
  const abort = new AbortController();
  let refreshTimer = null;
  stopView = () => { abort.abort(); clearTimeout(refreshTimer); };

  for (const a of view.querySelectorAll("[data-download]")) {
    a.href = `/v1/comparisons/${id}/${a.dataset.download}`;
    a.addEventListener("click", (ev) => { if (apiKey()) { ev.preventDefault(); download(a); } });
  }
  $("#curve-metric", view).addEventListener("change", () => drawCurves(view, state));
  $("#cancel", view).addEventListener("click", async () => {
    await api(`/v1/comparisons/${id}/cancel`, { method: "POST" });
  });

  function scheduleRefresh() {  // trials and report, at most every 700 ms
    if (refreshTimer) return;
    refreshTimer = setTimeout(async () => { refreshTimer = null; await refreshTables(view, state); }, 700);
  }
  (async () => {
    try {
      state.comparison = await apiJson(`/v1/comparisons/${id}`);
    } catch (e) {
      banner(e.status === 404 ? `No comparison ${id}.` : `Could not load the comparison: ${e.message}`);
      return;
    }
    $("#c-name", view).textContent = state.comparison.name;
    drawGraphs(view, state.comparison);
    setProgress(view, state, { status: state.comparison.status, ...state.comparison.progress });
    await refreshTables(view, state);
    followEvents(id, abort.signal, (event, data) => {
      if (event === "epoch") {
        state.epochs.set(`${data.trial_id}:${data.epoch}`, data);
        drawCurves(view, state);
      } else if (event === "progress") {
        setProgress(view, state, progressFromEvent(state, data));
      } else if (event === "trial_started" || event === "trial_finished") {
        scheduleRefresh();
      } else if (event === "comparison_finished") {
        setProgress(view, state, { ...(state.progress || {}), status: data.status });
        if (data.error) banner(`${data.error.title || "Failed"}: ${data.error.detail || ""}`);
        refreshTables(view, state);
      }
    });
  })();
}

// The event carries the comparison resource's progress fields; the resource fills any gap.
function progressFromEvent(state, d) {
  const base = (state.comparison && state.comparison.progress) || {};
  const pick = (a, b) => (d[a] !== undefined ? d[a] : d[b] !== undefined ? d[b] : base[a]);
  return {
    status: d.status,
    trials_total: pick("trials_total", "trials_total"),
    epochs_total: pick("epochs_total", "epochs_total"),
    trials_succeeded: pick("trials_succeeded", "succeeded"),
    trials_failed: pick("trials_failed", "failed"),
    trials_running: pick("trials_running", "running"),
    epochs_done: pick("epochs_done", "epochs_done"),
  };
}

function setProgress(view, state, p) {
  state.progress = p;
  state.status = p.status;
  const s = $("#c-status", view);
  s.textContent = p.status;
  s.className = `status ${p.status}`;
  const frac = p.epochs_total ? p.epochs_done / p.epochs_total : 0;
  $("#c-bar", view).style.width = `${Math.round(frac * 100)}%`;
  $("#c-progress", view).textContent = p.trials_total === undefined ? "" :
    `trials ${p.trials_succeeded}/${p.trials_total} done, ${p.trials_running} running, ` +
    `${p.trials_failed} failed \u00b7 epochs ${p.epochs_done}/${p.epochs_total}`;
  $("#cancel", view).hidden = TERMINAL.has(p.status);
}

async function refreshTables(view, state) {
  try {
    const [trials, report] = await Promise.all([
      apiJson(`/v1/comparisons/${state.id}/trials`),
      apiJson(`/v1/comparisons/${state.id}/report`),
    ]);
    state.trials = trials.items;
    state.report = report;
  } catch (e) { if (e.status !== 401) banner(`Could not refresh: ${e.message}`); return; }
  $("#trials tbody", view).replaceChildren(...state.trials.map((t) => el("tr", { "data-id": t.id },
    el("td", { class: "name" }, t.variant), el("td", {}, t.seed),
    el("td", {}, el("span", { class: `status ${t.status}` }, t.status)),
    el("td", {}, t.epochs_done), el("td", {}, fmtLevel(t.test_accuracy, { primary_metric: "test_accuracy" })),
    el("td", {}, fmtLevel(t.test_loss, { primary_metric: "test_loss" })),
    el("td", {}, fmt(t.train_seconds, 1)), el("td", {}, t.worker || ""))));
  const r = state.report;
  showAnswers($("#verdict", view), r);
  $("#report-final", view).textContent = r.final ? "(final)" : "(interim: still running)";
  const d = r.design;
  $("#design", view).textContent = !d ? "" :
    `Design: ${d.split === "per_seed" ? "a split per seed" : "one fixed split"}; ` +
    `${d.baseline ? `baseline ${d.baseline}` : "all pairs"}; ` +
    `${d.sequential ? `look ${d.looks.current} of ${d.looks.planned} (${BOUNDARY[d.looks.boundary] || d.looks.boundary} boundaries)` : "one look"}; ` +
    `alpha ${d.alpha}; equivalence margin \u00b1${fmtGap(d.equivalence_margin, r)}` +
    `${isLoss(r) ? "" : (fmtGap(d.equivalence_margin, r) === "1.00" ? " point" : " points")}.`;
  const byName = new Map((r.variants || []).map((v) => [v.name, v]));
  const ordered = (r.ranking || []).map((n) => byName.get(n)).filter(Boolean);
  $("#variants tbody", view).replaceChildren(...ordered.map((v) => el("tr", {},
    el("td", {}, v.rank ?? DASH), el("td", {}, v.tier ?? DASH), el("td", { class: "name" }, v.name),
    el("td", {}, fmtCount(v.n)), el("td", {}, fmtLevel(v.mean, r)), el("td", {}, fmtGap(v.std, r)),
    el("td", {}, fmtLevelCI(v.ci95, r)), el("td", {}, fmtCount(v.n_diverged)),
    el("td", {}, fmtCount(v.params)), el("td", {}, fmtSpread(v.seconds_per_epoch_mean, v.seconds_per_epoch_std)))));
  $("#pairwise tbody", view).replaceChildren(...(r.pairwise || []).map((p) => el("tr", { class: `conclusion ${p.conclusion}` },
    el("td", { class: "name" }, p.a), el("td", { class: "name" }, p.b),
    el("td", {}, p.test === "paired_t" ? "paired t" : (p.test === "welch" ? "Welch" : DASH)),
    el("td", {}, fmtGap(p.diff, r, true)), el("td", {}, fmtGapCI(p.ci95, r)),
    el("td", {}, fmtGapCI(p.ci95_adjusted, r)), el("td", {}, fmtP(p.p_adjusted)),
    el("td", {}, fmtEffect(p.effect_size) + (p.effect_size_ci95 ? ` [${fmtEffect(p.effect_size_ci95[0])}, ${fmtEffect(p.effect_size_ci95[1])}]` : "")),
    el("td", {}, fmtP(p.equivalence_p_adjusted)), el("td", {}, fmtGap(p.mde, r)),
    el("td", {}, CONCLUSION_WORDS[p.conclusion] || p.conclusion), el("td", {}, fmtCount(p.seeds_needed)))));
  $("#notes", view).replaceChildren(...(r.notes || []).map((n) => el("li", {}, typeof n === "string" ? n : (n.msg || JSON.stringify(n)))));
  drawSpread(view, state);
  drawCurves(view, state);
  showDifferences(view, state);
}

// One labelled answer per question (the report's answers: score, predictions,
// representations), each leading with its conclusion; the verdict when there are none.
const LEVELS = [["score", "Score"], ["predictions", "Predictions"], ["representations", "Representations"]];
const BOUNDARY = { pocock: "Pocock", obrien_fleming: "O'Brien-Fleming" };
function showAnswers(box, r) {
  const given = LEVELS.filter(([k]) => r.answers && r.answers[k]);
  if (!given.length) { box.textContent = r.verdict || "No verdict yet."; return; }
  box.replaceChildren(...given.map(([k, label]) => el("p", { class: "answer", "data-level": k },
    el("span", { class: "level" }, label), r.answers[k])));
}

// "Do they differ?": each tested pair's sentence, and the CKA heatmaps of the chosen pair
// (fetched with the key, once per pair and report state, not on every refresh).
function showDifferences(view, state) {
  const diffs = (state.report && state.report.differences) || [];
  const section = $("#differences", view);
  section.hidden = diffs.length === 0;
  if (!diffs.length) return;
  $("#diff-sentences", view).replaceChildren(
    ...diffs.filter((d) => d.sentence).map((d) => el("li", {}, d.sentence)));
  const select = $("#diff-pair", view);
  const pairs = diffs.map((d) => `${d.a}\u0000${d.b}`);
  if (select.dataset.pairs !== pairs.join("\u0001")) {
    select.dataset.pairs = pairs.join("\u0001");
    select.replaceChildren(...diffs.map((d, i) => el("option", { value: String(i) }, `${d.a} vs ${d.b}`)));
    select.onchange = () => loadHeatmaps(view, state, true);
  }
  loadHeatmaps(view, state, false);
}

async function loadHeatmaps(view, state, force) {
  const diffs = state.report.differences;
  const d = diffs[Number($("#diff-pair", view).value || 0)];
  if (!d) return;
  // Redrawn when a trial succeeds (its Grams join the averages), not only at the end.
  const done = state.trials.filter((t) => t.status === "succeeded").length;
  const key = `${d.a}\u0000${d.b}\u0000${state.report.final}\u0000${done}`;
  const img = $("#similarity-png", view);
  if (!force && img.dataset.key === key) return;
  img.dataset.key = key;
  const q = new URLSearchParams({ a: d.a, b: d.b });
  const resp = await api(`/v1/comparisons/${state.id}/similarity.png?${q}`);
  if (!resp.ok) { img.hidden = true; return; }
  const old = img.src;
  img.src = URL.createObjectURL(await resp.blob());
  img.hidden = false;
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
}

// Server-sent events read with fetch(), so the Authorization header can be sent
// (EventSource cannot set headers). Reconnects until comparison_finished arrives;
// the stream replays history first, and epochs are keyed by (trial, epoch), so replays are harmless.
async function followEvents(id, signal, onEvent) {
  let finished = false;
  while (!finished && !signal.aborted) {
    try {
      const resp = await fetch(`/v1/comparisons/${id}/events`,
        { headers: authHeaders({ Accept: "text/event-stream" }), signal });
      if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n/g, "\n");
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let event = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
          }
          if (!data.length) continue;
          if (event === "comparison_finished") finished = true;
          try { onEvent(event, JSON.parse(data.join("\n"))); } catch (e) { console.error(e); }
        }
      }
    } catch (e) {
      if (signal.aborted) return;
    }
    if (!finished) await new Promise((r) => setTimeout(r, 2000));
  }
}

async function download(a) {
  const resp = await api(a.href);
  if (!resp.ok) { banner(`Download failed: HTTP ${resp.status}`); return; }
  const url = URL.createObjectURL(await resp.blob());
  const tmp = el("a", { href: url, download: a.textContent });
  document.body.append(tmp);
  tmp.click();
  tmp.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---------- drawing ----------

function niceTicks(lo, hi, n = 5) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toFixed(10));
  return ticks;
}

function setupCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width;
  const h = Math.round(w * (canvas.height / canvas.width)) || canvas.height;
  canvas.width = Math.round(w * ratio);
  canvas.height = Math.round(h * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, h);
  return { ctx, w, h };
}

function axes(ctx, box, xr, yr, xlabel, xticks) {
  const { l, t, r, b } = box;
  const X = (x) => l + ((x - xr[0]) / (xr[1] - xr[0] || 1)) * (r - l);
  const Y = (y) => b - ((y - yr[0]) / (yr[1] - yr[0] || 1)) * (b - t);
  ctx.strokeStyle = "#d9dee5"; ctx.fillStyle = "#5f6b7a"; ctx.lineWidth = 1;
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (const y of niceTicks(yr[0], yr[1])) {
    if (y < yr[0] || y > yr[1]) continue;
    ctx.beginPath(); ctx.moveTo(l, Y(y)); ctx.lineTo(r, Y(y)); ctx.stroke();
    ctx.fillText(fmt(y, 3), l - 4, Y(y));
  }
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  for (const x of xticks || []) ctx.fillText(String(x), X(x), b + 4);
  if (xlabel) ctx.fillText(xlabel, (l + r) / 2, b + 18);
  ctx.strokeStyle = "#5f6b7a";
  ctx.beginPath(); ctx.moveTo(l, t); ctx.lineTo(l, b); ctx.lineTo(r, b); ctx.stroke();
  return { X, Y };
}

function variantColors(state) {
  const names = [];
  const spec = state.comparison && state.comparison.spec;
  for (const v of (spec && spec.variants) || []) names.push(v.name);
  for (const t of state.trials) if (!names.includes(t.variant)) names.push(t.variant);
  return new Map(names.map((n, i) => [n, PALETTE[i % PALETTE.length]]));
}

function drawCurves(view, state) {
  const canvas = $("#curves", view);
  if (!canvas) return;
  const metric = $("#curve-metric", view).value;
  const { ctx, w, h } = setupCanvas(canvas);
  const series = new Map();  // trial -> {variant, seed, points}
  for (const row of state.epochs.values()) {
    const y = row[metric];
    if (typeof y !== "number") continue;
    if (!series.has(row.trial_id)) series.set(row.trial_id, { variant: row.variant, seed: row.seed, pts: [] });
    series.get(row.trial_id).pts.push([row.epoch, y]);
  }
  const all = [...series.values()].flatMap((s) => s.pts);
  // The legend gets the width its longest name needs (up to 45% of the chart); a longer name
  // wraps onto more lines there rather than running off the canvas.
  ctx.font = "12px system-ui, sans-serif";
  const longest = Math.max(0, ...[...variantColors(state).keys()].map((n) => ctx.measureText(n).width));
  const box = { l: 52, t: 12, r: w - Math.min(Math.max(120, longest + 34), w * 0.45), b: h - 34 };
  if (!all.length) {
    axes(ctx, box, [0, 1], [0, 1], "epoch", []);
    ctx.fillStyle = "#5f6b7a"; ctx.textAlign = "center";
    ctx.fillText(`waiting for the first epoch (${metric})`, (box.l + box.r) / 2, (box.t + box.b) / 2);
    return;
  }
  const maxEpoch = Math.max(...all.map((p) => p[0]));
  let ylo = Math.min(...all.map((p) => p[1])), yhi = Math.max(...all.map((p) => p[1]));
  const pad = (yhi - ylo) * 0.08 || 0.05;
  ylo -= pad; yhi += pad;
  const xticks = niceTicks(1, Math.max(maxEpoch, 2), Math.min(maxEpoch, 8)).filter((x) => Number.isInteger(x));
  const { X, Y } = axes(ctx, box, [1, Math.max(maxEpoch, 2)], [ylo, yhi], "epoch", xticks);
  const colors = variantColors(state);
  for (const s of series.values()) {
    s.pts.sort((a, b) => a[0] - b[0]);
    ctx.strokeStyle = ctx.fillStyle = colors.get(s.variant) || "#000";
    ctx.lineWidth = 1.6; ctx.globalAlpha = 0.85;
    ctx.beginPath();
    s.pts.forEach(([x, y], i) => (i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
    ctx.stroke();
    for (const [x, y] of s.pts) { ctx.beginPath(); ctx.arc(X(x), Y(y), 2.5, 0, 2 * Math.PI); ctx.fill(); }
  }
  ctx.globalAlpha = 1;
  legend(ctx, colors, box.r + 12, box.t + 4);
}

function legend(ctx, colors, x, y) {
  ctx.textAlign = "left"; ctx.textBaseline = "middle"; ctx.font = "12px system-ui, sans-serif";
  const width = ctx.canvas.clientWidth - x - 22;
  for (const [name, color] of colors) {
    ctx.fillStyle = color; ctx.fillRect(x, y - 5, 12, 10);
    ctx.fillStyle = "#1d232a";
    for (const line of fitLines(ctx, name, width)) { ctx.fillText(line, x + 18, y); y += 14; }
    y += 4;
  }
}

// ``text`` in lines no wider than ``width`` (broken anywhere: variant names have no spaces).
function fitLines(ctx, text, width) {
  const lines = [];
  let line = "";
  for (const ch of String(text)) {
    if (line && ctx.measureText(line + ch).width > width) { lines.push(line); line = ""; }
    line += ch;
  }
  return [...lines, line];
}

function drawSpread(view, state) {
  const canvas = $("#spread", view);
  const metric = (state.report && state.report.primary_metric) || "test_accuracy";
  $("#spread-metric", view).textContent = metric;
  const { ctx, w, h } = setupCanvas(canvas);
  const colors = variantColors(state);
  const names = [...colors.keys()];
  const values = state.trials.filter((t) => typeof t[metric] === "number");
  const summary = new Map(((state.report && state.report.variants) || []).map((v) => [v.name, v]));
  const ys = values.map((t) => t[metric]);
  for (const v of summary.values()) if (v.ci95) ys.push(...v.ci95.filter((x) => typeof x === "number"));
  // Each name under its column, wrapped to the column's width (never cut off).
  ctx.font = "12px system-ui, sans-serif";
  const colWidth = (w - 64) / Math.max(names.length, 1) - 6;
  const labels = names.map((n) => fitLines(ctx, n, colWidth));
  const rows = Math.min(4, Math.max(1, ...labels.map((l) => l.length)));
  const box = { l: 52, t: 12, r: w - 12, b: h - 34 - (rows - 1) * 14 };
  if (!ys.length || !names.length) {
    axes(ctx, box, [0, 1], [0, 1], "", []);
    ctx.fillStyle = "#5f6b7a"; ctx.textAlign = "center";
    ctx.fillText("waiting for finished trials", (box.l + box.r) / 2, (box.t + box.b) / 2);
    return;
  }
  let lo = Math.min(...ys), hi = Math.max(...ys);
  const pad = (hi - lo) * 0.1 || 0.02;
  lo -= pad; hi += pad;
  const { X, Y } = axes(ctx, box, [-0.5, names.length - 0.5], [lo, hi], "", []);
  ctx.textAlign = "center"; ctx.textBaseline = "top"; ctx.font = "12px system-ui, sans-serif";
  names.forEach((name, i) => {
    const color = colors.get(name);
    ctx.fillStyle = "#1d232a";
    labels[i].slice(0, rows).forEach((line, k) => ctx.fillText(line, X(i), box.b + 6 + k * 14));
    const s = summary.get(name);
    if (s && s.ci95 && typeof s.ci95[0] === "number") {
      ctx.strokeStyle = color; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.moveTo(X(i) + 14, Y(s.ci95[0])); ctx.lineTo(X(i) + 14, Y(s.ci95[1])); ctx.stroke();
    }
    if (s && typeof s.mean === "number") {
      ctx.fillStyle = color; ctx.fillRect(X(i) + 8, Y(s.mean) - 1.5, 12, 3);
    }
    const pts = values.filter((t) => t.variant === name);
    pts.forEach((t, j) => {
      ctx.fillStyle = color; ctx.globalAlpha = 0.8;
      ctx.beginPath(); ctx.arc(X(i) - 10 + ((j % 5) - 2) * 3, Y(t[metric]), 4, 0, 2 * Math.PI); ctx.fill();
      ctx.globalAlpha = 1;
    });
  });
}

// ---------- start ----------

function initKeyForm() {
  const input = $("#api-key");
  const stateText = () => { $("#key-state").textContent = apiKey() ? "key set for this tab" : "no key"; };
  input.value = apiKey();
  stateText();
  $("#key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = input.value.trim();
    if (v) sessionStorage.setItem(KEY_STORE, v); else sessionStorage.removeItem(KEY_STORE);
    stateText();
    route();
  });
}

window.addEventListener("hashchange", route);
initKeyForm();
route();
