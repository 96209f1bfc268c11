// archbench dashboard: a variant's graph as a small layered SVG drawing.
// graphLayout is pure (no DOM: the unit tests run it under node); graphSvg draws its answer.
// The input is the analyze answer (POST /v1/architectures/analyze): layers with their name,
// type, output_shape and inputs ("input" is the model's input). A node sits one row below the
// deepest of its inputs, so a stack stays one column and a branch opens columns side by side.
"use strict";

const GRAPH = { nodeH: 36, rowH: 58, gap: 22, pad: 12, charW: 6.6, minW: 120, maxW: 240 };

function shapeText(shape) {
  return Array.isArray(shape) && shape.length ? shape.join("\u00d7") : "";
}

function graphLayout(analysis) {
  const layers = (analysis && analysis.layers) || [];
  const nodes = [{ name: "input", type: "Input", shape: shapeText(analysis && analysis.input_shape), depth: 0, order: 0 }];
  const byName = new Map([["input", nodes[0]]]);
  const edges = [];
  layers.forEach((l, i) => {
    const inputs = l.inputs && l.inputs.length ? l.inputs : [i ? layers[i - 1].name : "input"];
    const parents = inputs.map((p) => byName.get(p)).filter(Boolean);
    const node = {
      name: l.name, type: l.type, shape: shapeText(l.output_shape), order: i + 1,
      depth: 1 + Math.max(0, ...parents.map((p) => p.depth)), parents,
    };
    nodes.push(node);
    byName.set(l.name, node);
    for (const p of parents) edges.push({ from: p.name, to: l.name });
  });
  // Rows by depth; within a row, by the mean column of the inputs (declaration order breaks ties).
  const rows = [];
  for (const n of nodes) (rows[n.depth] = rows[n.depth] || []).push(n);
  rows.forEach((row) => {
    row.forEach((n) => {
      const ps = n.parents || [];
      n.bary = ps.length ? ps.reduce((s, p) => s + p.slot, 0) / ps.length : 0;
    });
    row.sort((a, b) => a.bary - b.bary || a.order - b.order);
    row.forEach((n, k) => { n.slot = k - (row.length - 1) / 2; });
  });
  const longest = Math.max(...nodes.map((n) => Math.max(n.name.length + n.type.length + 3, n.shape.length)));
  const w = Math.min(GRAPH.maxW, Math.max(GRAPH.minW, Math.ceil(longest * GRAPH.charW) + 16));
  const widest = Math.max(...rows.map((r) => r.length));
  const width = widest * (w + GRAPH.gap) - GRAPH.gap + 2 * GRAPH.pad;
  for (const n of nodes) {
    n.x = width / 2 + n.slot * (w + GRAPH.gap) - w / 2;
    n.y = GRAPH.pad + n.depth * GRAPH.rowH;
  }
  const height = GRAPH.pad * 2 + (rows.length - 1) * GRAPH.rowH + GRAPH.nodeH;
  return {
    width, height, nodeW: w,
    nodes: nodes.map(({ name, type, shape, depth, x, y }) => ({ name, type, shape, depth, x, y })),
    edges,
  };
}

// The path of an edge: a curve from the bottom of one node to the top of the other. An edge
// that skips rows runs straight down its source's column and turns into its target in the
// last gap; one whose column holds the nodes between (a stack's skip) runs down beside them.
function edgePath(a, b, w) {
  const x1 = a.x + w / 2, y1 = a.y + GRAPH.nodeH, x2 = b.x + w / 2, y2 = b.y - 4;
  if (b.depth - a.depth <= 1) {
    const mid = (y1 + y2) / 2;
    return `M${x1},${y1} C${x1},${mid} ${x2},${mid} ${x2},${y2}`;
  }
  const side = Math.abs(x1 - x2) < 1 ? x1 + w / 2 + GRAPH.gap / 2 : x1;
  const turn = y2 - (GRAPH.rowH - GRAPH.nodeH);  // the bottom of the row above the target
  const start = side === x1 ? `M${x1},${y1}` : `M${x1},${y1} Q${side},${y1} ${side},${y1 + 10}`;
  return `${start} L${side},${turn} C${side},${y2} ${x2},${turn} ${x2},${y2}`;
}

function graphSvg(analysis, variant) {
  const holder = document.createElement("div");
  holder.innerHTML = "<svg></svg>";  // the HTML parser gives it the SVG namespace
  const NS = holder.firstChild.namespaceURI;
  const make = (tag, attrs = {}, text) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const g = graphLayout(analysis);
  const svg = make("svg", {
    class: "graph", "data-variant": variant, width: g.width, height: g.height,
    viewBox: `0 0 ${g.width} ${g.height}`, role: "img", "aria-label": `the graph of ${variant}`,
  });
  const marker = make("marker", { id: `arrow-${variant}`, viewBox: "0 0 8 8", refX: 4, refY: 4, markerWidth: 7, markerHeight: 7, orient: "auto" });
  marker.append(make("path", { d: "M0,0 L8,4 L0,8 z", fill: "#5f6b7a" }));
  const defs = make("defs");
  defs.append(marker);
  svg.append(defs);
  const at = new Map(g.nodes.map((n) => [n.name, n]));
  for (const e of g.edges) {
    svg.append(make("path", {
      class: "gedge", "data-from": e.from, "data-to": e.to, d: edgePath(at.get(e.from), at.get(e.to), g.nodeW),
      fill: "none", stroke: "#5f6b7a", "stroke-width": 1.3, "marker-end": `url(#arrow-${variant})`,
    }));
  }
  const fit = (text) => (text.length * GRAPH.charW > g.nodeW - 10 ? text.slice(0, Math.floor((g.nodeW - 14) / GRAPH.charW)) + "\u2026" : text);
  for (const n of g.nodes) {
    const box = make("g", { class: "gnode", "data-name": n.name, "data-type": n.type, transform: `translate(${n.x},${n.y})` });
    box.append(make("title", {}, `${n.name}: ${n.type}${n.shape ? ` \u2192 ${n.shape}` : ""}`));
    box.append(make("rect", { width: g.nodeW, height: GRAPH.nodeH, rx: 5, fill: n.type === "Input" ? "#eef2ff" : "#fff", stroke: "#94a3b8" }));
    box.append(make("text", { x: g.nodeW / 2, y: 15, "text-anchor": "middle", "font-size": 11, "font-weight": 600 }, fit(`${n.name} \u00b7 ${n.type}`)));
    box.append(make("text", { class: "gshape", x: g.nodeW / 2, y: 29, "text-anchor": "middle", "font-size": 11, fill: "#5f6b7a" }, fit(n.shape)));
    svg.append(box);
  }
  return svg;
}

// The comparison page's "Graphs": each variant of the stored spec, analysed by the api (the
// same answer as POST /v1/architectures/analyze), drawn once per page.
const VARIANT_KEYS = ["name", "input_shape", "layers", "keras_config", "output"];
async function drawGraphs(view, comparison) {
  const list = view.querySelector("#graph-list");
  if (!list || list.dataset.drawn === comparison.id) return;
  list.dataset.drawn = comparison.id;
  const variants = (comparison.spec && comparison.spec.variants) || [];
  const figures = await Promise.all(variants.map(async (v) => {
    const variant = Object.fromEntries(VARIANT_KEYS.filter((k) => k in v).map((k) => [k, v[k]]));
    const fig = document.createElement("figure");
    fig.className = "graph-figure";
    fig.dataset.variant = v.name;
    const caption = document.createElement("figcaption");
    try {
      const a = await apiJson("/v1/architectures/analyze", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ variant }),
      });
      caption.textContent = `${v.name}: ${a.layers.length} layers, depth ${a.depth}, ` +
        `${a.merge_points} merge${a.merge_points === 1 ? "" : "s"}, ${a.params.toLocaleString("en-US")} parameters`;
      fig.append(caption, graphSvg(a, v.name));
    } catch (e) {
      caption.textContent = `${v.name}: no graph (${e.message})`;
      fig.append(caption);
    }
    return fig;
  }));
  list.replaceChildren(...figures);
}

if (typeof module !== "undefined") module.exports = { graphLayout, edgePath };
