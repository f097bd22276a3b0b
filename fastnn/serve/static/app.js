// The draw-a-digit page of `fastnn serve`. The drawing goes to POST /predict as a PNG; the
// server does the MNIST-style preprocessing (one implementation, shared with the API and
// `fastnn predict`) and answers with the 28x28 input, every layer's activations and the
// probabilities, which this script draws.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const PEN = 22;               // pen width on the 280 px pad: MNIST-like 2-3 px strokes at 28x28
const LINES_PER_LAYER = 140;  // strongest connections drawn between two layers
const W = 900, H = 540;       // the network view's coordinate system (see index.html viewBox)
const CELL = 9;               // input grid cell size in that system

const $ = (id) => document.getElementById(id);
const state = { model: null, weights: null, pos: [], drawn: false, dirty: false, busy: false,
                updates: 0 };

async function getJSON(url) {
  const r = await fetch(url);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function svg(tag, attrs, parent) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

// ---- the drawing pad ------------------------------------------------------------------------
function setupPad() {
  const pad = $("pad");
  const ctx = pad.getContext("2d");
  let last = null;
  const clear = () => {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, pad.width, pad.height);
  };
  const at = (e) => {
    const r = pad.getBoundingClientRect();
    return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
  };
  const line = (a, b) => {
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = PEN;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(a[0], a[1]);
    ctx.lineTo(b[0], b[1]);
    ctx.stroke();
    state.drawn = true;
    schedule();
  };
  pad.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    pad.setPointerCapture(e.pointerId);
    last = at(e);
    line(last, last);
  });
  pad.addEventListener("pointermove", (e) => {
    if (!last) return;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const ev of events.length ? events : [e]) {
      const p = at(ev);
      line(last, p);
      last = p;
    }
  });
  const end = () => { last = null; };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);
  $("clear").addEventListener("click", () => {
    clear();
    state.drawn = false;
    schedule();
  });
  clear();
}

// One request in flight at a time; the newest drawing is always sent once it finishes.
function schedule() {
  state.dirty = true;
  pump();
}

function pump() {
  document.body.dataset.idle = state.dirty || state.busy ? "0" : "1";   // for tests
  if (!state.dirty || state.busy) return;
  state.dirty = false;
  state.busy = true;
  document.body.dataset.idle = "0";
  $("pad").toBlob(async (blob) => {
    try {
      const form = new FormData();
      form.append("image", blob, "drawing.png");
      const r = await fetch("/predict", { method: "POST", body: form });
      const out = await r.json();
      if (!r.ok) throw new Error(out.error || r.statusText);
      render(out);
    } catch (err) {
      $("confidence").textContent = "error: " + err.message;
    } finally {
      state.busy = false;
      pump();
    }
  }, "image/png");
}

// ---- the network view ---------------------------------------------------------------------
function columnX(k, n) {
  const x0 = 14 + 28 * CELL + 130, x1 = W - 120;
  return n === 1 ? x1 : x0 + (x1 - x0) * (k - 1) / (n - 1);
}

function buildNetwork() {
  const net = $("net");
  const shown = state.weights.shown;
  const sizes = state.model.sizes;
  const nLayers = shown.length - 1;
  net.replaceChildren();
  const lines = svg("g", { id: "lines" }, net);
  const cells = svg("g", { id: "cells" }, net);
  const nodes = svg("g", { id: "neurons" }, net);
  const gx = 14, gy = (H - 28 * CELL) / 2 + 10;
  state.pos = [[]];
  for (let i = 0; i < 784; i++) {
    const x = gx + (i % 28) * CELL, y = gy + Math.floor(i / 28) * CELL;
    svg("rect", { class: "cell", x, y, width: CELL, height: CELL, fill: "#000" }, cells);
    state.pos[0].push([x + CELL / 2, y + CELL / 2]);
  }
  svg("rect", { x: gx, y: gy, width: 28 * CELL, height: 28 * CELL, fill: "none",
                stroke: "#35436a" }, net);
  label(gx + 14 * CELL, 22, "input 28\u00d728", net);
  for (let k = 1; k <= nLayers; k++) {
    const n = shown[k], x = columnX(k, nLayers);
    const step = Math.min(44, (H - 70) / n), r = Math.max(3, Math.min(16, step * 0.4));
    const top = 20 + (H - step * (n - 1)) / 2;
    const out = k === nLayers;
    const name = out ? "output" : `hidden ${k}` + (n < sizes[k] ? ` (first ${n} of ${sizes[k]})` : "");
    label(x, 22, name, net);
    state.pos.push([]);
    for (let j = 0; j < n; j++) {
      const y = top + j * step;
      const c = svg("circle", { class: "neuron", cx: x, cy: y, r, fill: "#000",
                                "data-layer": k, "data-unit": j, "data-a": "0" }, nodes);
      svg("title", {}, c).textContent = `${name} unit ${j}`;
      state.pos[k].push([x, y]);
      if (out) {
        svg("text", { x: x + r + 10, y, class: "digit", id: `digit-${j}` }, net).textContent = j;
        svg("text", { x: x + r + 30, y, class: "prob", id: `prob-${j}` }, net).textContent = "";
      }
    }
  }
  state.lines = lines;
}

function label(x, y, text, parent) {
  svg("text", { x, y, class: "label" }, parent).textContent = text;
}

function brightness(values, activation) {
  if (activation === "sigmoid" || activation === "softmax") return values;
  if (activation === "tanh") return values.map((v) => (v + 1) / 2);
  const peak = Math.max(1e-9, ...values.map(Math.abs));
  return values.map((v) => Math.max(0, v / peak));
}

function grey(b) {
  const v = Math.round(255 * Math.min(1, Math.max(0, b)));
  return `rgb(${v},${v},${v})`;
}

function drawLines(layerValues) {
  const g = state.lines;
  g.replaceChildren();
  const { layers } = state.weights;
  for (let k = 0; k < layers.length; k++) {
    const { rows, cols, w } = layers[k];
    const a = layerValues[k];
    const score = new Float64Array(rows * cols);
    let any = false;
    for (let i = 0; i < rows; i++) {
      if (a[i] === 0) continue;
      for (let j = 0; j < cols; j++) score[i * cols + j] = a[i] * w[i * cols + j];
      any = true;
    }
    if (!any) continue;
    const order = Array.from(score.keys()).filter((q) => score[q] !== 0)
      .sort((p, q) => Math.abs(score[q]) - Math.abs(score[p])).slice(0, LINES_PER_LAYER);
    if (!order.length) continue;
    const peak = Math.abs(score[order[0]]);
    for (const q of order.reverse()) {
      const s = score[q] / peak, i = Math.floor(q / cols), j = q % cols;
      const [x1, y1] = state.pos[k][i], [x2, y2] = state.pos[k + 1][j];
      svg("line", { x1, y1, x2, y2, stroke: s > 0 ? "#4ea3ff" : "#ff6b5b",
                    "stroke-opacity": (0.12 + 0.8 * Math.abs(s)).toFixed(3),
                    "stroke-width": (0.4 + 2.2 * Math.abs(s)).toFixed(2) }, g);
    }
  }
}

function render(out) {
  const input = out.input;
  const acts = out.activations;
  const shown = state.weights.shown;
  const cells = $("cells").children;
  for (let i = 0; i < 784; i++) cells[i].setAttribute("fill", grey(input[i]));
  drawSeen(input);
  const layerValues = [input];
  acts.forEach((a, idx) => {
    const k = idx + 1;
    const values = a.slice(0, shown[k]);
    layerValues.push(values);
    const b = brightness(values, state.model.layers[idx].activation);
    for (const c of document.querySelectorAll(`#neurons circle[data-layer="${k}"]`)) {
      const j = Number(c.dataset.unit);
      c.setAttribute("fill", grey(b[j]));
      c.dataset.a = values[j].toFixed(4);
    }
  });
  drawLines(layerValues);
  const last = acts.length;
  const winner = state.drawn ? out.class : -1;
  for (const c of document.querySelectorAll(`#neurons circle[data-layer="${last}"]`)) {
    c.classList.toggle("win", Number(c.dataset.unit) === winner);
  }
  out.probabilities.forEach((p, j) => {
    const prob = $(`prob-${j}`), digit = $(`digit-${j}`);
    if (!prob) return;
    prob.textContent = `${(100 * p).toFixed(1)}%`;
    prob.classList.toggle("win", j === winner);
    digit.classList.toggle("win", j === winner);
  });
  const pred = $("prediction");
  pred.dataset.class = state.drawn ? String(out.class) : "";
  pred.textContent = state.drawn ? String(out.class) : "\u2013";
  $("confidence").textContent = state.drawn
    ? `${(100 * out.probabilities[out.class]).toFixed(1)}% sure` : "draw a digit";
  updateBars(acts[0]);
  state.updates += 1;
  document.body.dataset.updates = String(state.updates);
}

function drawSeen(input) {
  const ctx = $("seen").getContext("2d");
  const img = ctx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = Math.round(255 * input[i]);
    img.data.set([v, v, v, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
}

// ---- what each first-layer neuron looks for -------------------------------------------------
function buildWeights() {
  const grid = $("weights-grid");
  const { rows, cols, w } = state.weights.layers[0];
  grid.replaceChildren();
  for (let j = 0; j < cols; j++) {
    let peak = 1e-12;
    for (let i = 0; i < rows; i++) peak = Math.max(peak, Math.abs(w[i * cols + j]));
    const box = document.createElement("div");
    box.className = "unit";
    const cv = document.createElement("canvas");
    cv.width = 28;
    cv.height = 28;
    const ctx = cv.getContext("2d");
    const img = ctx.createImageData(28, 28);
    for (let i = 0; i < 784; i++) {
      const t = w[i * cols + j] / peak;
      const rgb = t > 0 ? [78, 163, 255] : [255, 107, 91];
      img.data.set(rgb.map((c) => Math.round(c * Math.abs(t))).concat(255), 4 * i);
    }
    ctx.putImageData(img, 0, 0);
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.appendChild(document.createElement("span"));
    const name = document.createElement("div");
    name.textContent = `neuron ${j}`;
    box.append(cv, bar, name);
    grid.appendChild(box);
  }
}

function updateBars(first) {
  const b = brightness(first, state.model.layers[0].activation);
  document.querySelectorAll("#weights-grid .bar span").forEach((s, j) => {
    s.style.width = `${Math.round(100 * Math.min(1, b[j]))}%`;
  });
}

function setupTabs() {
  const show = (which) => {
    $("view-network").hidden = which !== "network";
    $("view-weights").hidden = which !== "weights";
    $("tab-network").classList.toggle("active", which === "network");
    $("tab-weights").classList.toggle("active", which === "weights");
  };
  $("tab-network").addEventListener("click", () => show("network"));
  $("tab-weights").addEventListener("click", () => show("weights"));
}

async function start() {
  try {
    state.model = await getJSON("/model");
  } catch (err) {
    $("model-info").textContent = "could not load the model: " + err.message;
    return;
  }
  const m = state.model;
  const acts = [...new Set(m.layers.map((l) => l.activation))].join("/");
  $("model-info").textContent = `${m.sizes.join("-")} ${acts} \u00b7 ${m.dtype} \u00b7 backend ` +
    `${m.backend} \u00b7 fastnn ${m.fastnn_version} \u00b7 ${m.source}`;
  if (m.input_size !== 784) {
    const needs = $("needs");
    needs.hidden = false;
    needs.textContent = `This model takes ${m.input_size} inputs. The drawing page needs a model ` +
      "with 784 inputs (28\u00d728 pixel images), such as the digits-16 network `fastnn serve` " +
      "trains when started without a model file. The API works with this model: POST /predict " +
      `with {"pixels": [${m.input_size} numbers]}.`;
    $("main").hidden = true;
    return;
  }
  state.weights = await getJSON("/model/weights");
  buildNetwork();
  buildWeights();
  setupTabs();
  setupPad();
  schedule();
}

start();
