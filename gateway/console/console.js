// visionserve console: the public /v1 API from a browser, with the caller's own API key.
// The key lives in sessionStorage (this tab only); every value from the API is written with
// textContent, never as HTML.
"use strict";

const KEY = "visionserve.key";
const $ = (id) => document.getElementById(id);
let historyCursor = null;

function key() { return sessionStorage.getItem(KEY); }

function show(text, ok = false) {
  const box = $("message");
  box.textContent = text;
  box.className = ok ? "ok" : "";
  box.hidden = !text;
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${key()}` }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && body.error) message = `${response.status} ${body.error.code}: ${body.error.message}`;
    } catch (_) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function page(name) {
  const signedIn = Boolean(key());
  const wanted = signedIn ? (name || "classify") : "sign-in";
  for (const section of document.querySelectorAll(".page")) section.hidden = section.id !== `page-${wanted}`;
  for (const link of document.querySelectorAll("#nav a[data-page]")) {
    link.classList.toggle("active", link.dataset.page === wanted);
  }
  $("nav").hidden = !signedIn;
  if (wanted === "history") loadHistory(true);
  if (wanted === "models") loadModels();
}

async function signIn(event) {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("key").value.trim());
  try {
    await fillModels();
    $("key").value = "";
    show("");
    location.hash = "#classify";
    page("classify");
  } catch (error) {
    sessionStorage.removeItem(KEY);
    show(error.status === 401 ? "That key was refused (unknown or revoked)." : error.message);
  }
}

function signOut() {
  sessionStorage.removeItem(KEY);
  location.hash = "";
  page();
}

async function fillModels() {
  const body = await (await api("/v1/models")).json();
  for (const id of ["model", "history-model"]) {
    const select = $(id);
    const keep = select.options[0];
    select.replaceChildren(keep);
    for (const model of body.models) {
      const option = document.createElement("option");
      option.value = model.name;
      option.textContent = model.ready ? model.name : `${model.name} (not ready)`;
      select.appendChild(option);
    }
  }
  $("top-k").value = body.default_top_k;
  return body;
}

function chosen(file) {
  $("file-name").textContent = file ? `${file.name} (${Math.round(file.size / 1024)} KB)` : "";
}

const VIDEO_EXTENSIONS = [".mp4", ".webm", ".avi", ".mov"];

function isVideo(file) {
  const name = file.name.toLowerCase();
  return file.type.startsWith("video/") || VIDEO_EXTENSIONS.some((ext) => name.endsWith(ext));
}

async function classify(event) {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) { show("Pick or drop an image or a video first."); return; }
  const video = isVideo(file);
  const form = new FormData();
  form.append(video ? "video" : "image", file, file.name);
  form.append("model", $("model").value);
  form.append("top_k", $("top-k").value);
  if (video) form.append("every_seconds", $("every-seconds").value);
  $("classify").disabled = true;
  try {
    const path = video ? "/v1/classify/video" : "/v1/classify";
    const body = await (await api(path, { method: "POST", body: form })).json();
    show("");
    renderAnswer(body);
  } catch (error) {
    $("result").hidden = true;
    show(error.message);
  } finally {
    $("classify").disabled = false;
  }
}

function renderAnswer(body) {
  const weights = body.weights === "demo" ? ", demo weights" : "";
  const video = Array.isArray(body.frames);  // /v1/classify/video: the mean over the sampled frames
  const what = video ? ` · ${body.frames.length} frames of a ${body.duration_s.toFixed(1)} s video, mean` : "";
  $("result-meta").textContent =
    `${body.model} v${body.version}${weights} · ${body.latency_ms.toFixed(1)} ms · ` +
    `${body.cached ? "cache hit" : "not cached"} · request ${body.request_id}${what}`;
  const list = $("predictions");
  list.replaceChildren();
  for (const p of video ? body.aggregate : body.predictions) {
    const item = document.createElement("li");
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.max(1, Math.round(p.score * 300))}px`;
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = `${p.label} — ${(p.score * 100).toFixed(2)} %`;
    item.append(bar, label);
    list.appendChild(item);
  }
  const segments = $("segments");
  segments.replaceChildren();
  for (const segment of video ? body.segments : []) {
    const item = document.createElement("li");
    item.textContent = `${segment.start_s.toFixed(1)}–${segment.end_s.toFixed(1)} s: ${segment.label} ` +
      `(${segment.frames} frame${segment.frames === 1 ? "" : "s"})`;
    segments.appendChild(item);
  }
  $("video-result").hidden = !video;
  $("result").hidden = false;
}

function historyQuery() {
  const params = new URLSearchParams();
  if ($("history-model").value) params.set("model", $("history-model").value);
  for (const [id, name] of [["history-since", "since"], ["history-until", "until"]]) {
    if ($(id).value) params.set(name, $(id).value);  // naive ISO 8601: the API reads it as UTC
  }
  return params;
}

async function loadHistory(fresh) {
  if (fresh) historyCursor = null;
  const params = historyQuery();
  params.set("limit", "50");
  if (historyCursor) params.set("cursor", historyCursor);
  try {
    const body = await (await api(`/v1/history?${params}`)).json();
    const rows = $("history-table").tBodies[0];
    if (fresh) rows.replaceChildren();
    for (const record of body.records) {
      const row = rows.insertRow();
      const top = record.predictions[0];
      cell(row, record.created_at.replace("T", " ").slice(0, 19));
      cell(row, record.model);
      cell(row, record.version === null ? "" : String(record.version));
      cell(row, top ? top.label : "");
      cell(row, top ? top.score.toFixed(3) : "");
      cell(row, record.latency_ms.toFixed(1));
      cell(row, record.cached ? "yes" : "no");
      cell(row, record.error ? `${record.status}: ${record.error}` : record.status);
    }
    historyCursor = body.next_cursor;
    $("more").hidden = !historyCursor;
    show("");
  } catch (error) {
    show(error.message);
  }
}

async function exportHistory() {
  try {
    const blob = await (await api(`/v1/history/export?${historyQuery()}`)).blob();
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "visionserve-history.csv";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (error) {
    show(error.message);
  }
}

async function loadModels() {
  try {
    const body = await fillModels();
    $("models-meta").textContent =
      `Triton ${body.triton_reachable ? "reachable" : "NOT reachable"} · auto: ${body.auto_policy}`;
    const rows = $("models-table").tBodies[0];
    rows.replaceChildren();
    for (const m of body.models) {
      const row = rows.insertRow();
      cell(row, m.name);
      cell(row, m.ready ? "ready" : `not ready${m.reason ? ` (${m.reason})` : ""}`);
      cell(row, m.served_version === null ? "" : String(m.served_version));
      cell(row, m.versions.join(", "));
      const canary = m.labels.canary === undefined ? "" :
        ` · canary v${m.labels.canary} (${Math.round((m.canary_weight || 0) * 100)} % of keys)`;
      cell(row, m.labels.stable === undefined ? "" : `stable v${m.labels.stable}${canary}`);
      cell(row, m.demo_weights ? "demo" : (m.weights || ""));
      const latency = m.expected_latency_ms === null ? "" : m.expected_latency_ms.toFixed(1);
      cell(row, latency + (m.latency_measured ? " (measured)" : ""));
    }
    drawLatency(body.models.filter((m) => m.expected_latency_ms !== null));
  } catch (error) {
    show(error.message);
  }
}

function drawLatency(models) {
  const svg = $("latency-chart");
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const width = svg.clientWidth || 600, row = 28, top = 8, room = width - 140 - 180;
  const height = top * 2 + row * Math.max(1, models.length);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.style.height = `${height}px`;
  const most = Math.max(1, ...models.map((m) => m.expected_latency_ms));
  models.forEach((m, i) => {
    const y = top + i * row;
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", "4");
    label.setAttribute("y", String(y + 17));
    label.textContent = m.name;
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("x", "140");
    bar.setAttribute("y", String(y + 4));
    bar.setAttribute("height", "18");
    bar.setAttribute("width", String(Math.max(2, room * m.expected_latency_ms / most)));
    bar.setAttribute("fill", m.latency_measured ? "#2f6fae" : "#9bb7d4");
    const value = document.createElementNS(ns, "text");
    value.setAttribute("x", String(146 + room * m.expected_latency_ms / most));
    value.setAttribute("y", String(y + 17));
    value.textContent = `${m.expected_latency_ms.toFixed(1)} ms${m.latency_measured ? "" : " (from GFLOPs)"}`;
    svg.append(label, bar, value);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("classify-form").addEventListener("submit", classify);
  $("history-form").addEventListener("submit", (event) => { event.preventDefault(); loadHistory(true); });
  $("more").addEventListener("click", () => loadHistory(false));
  $("export").addEventListener("click", exportHistory);
  $("file").addEventListener("change", () => chosen($("file").files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) {
      $("file").files = event.dataTransfer.files;
      chosen($("file").files[0]);
    }
  });
  window.addEventListener("hashchange", () => page(location.hash.slice(1)));
  if (key()) fillModels().catch((error) => show(error.message));
  page(location.hash.slice(1));
});
