// The page: controls, the next-token view, the URL fragment. The engine (engine.js) does the
// arithmetic; the server (or, offline, the embedded data) gives the logits rows. Every text
// that comes from the model is put in with textContent, never parsed as HTML.
"use strict";

const DATA = JSON.parse(document.getElementById("sampler-data").textContent);
SamplerEngine.configure(DATA.engine);
const $ = (id) => document.getElementById(id);
// Every list below comes from the stage table (DATA.engine: sampler/serve/page.py).
const SETTINGS = [...DATA.engine.settings, ...DATA.engine.row_settings];
const SETTING = Object.fromEntries(SETTINGS.map((s) => [s.name, s]));
// The sliders: the settings the table gives a control, in table order (min_tokens_to_keep last).
const SLIDERS = SETTINGS.filter((s) => s.slider);

const view = { step: null, context: {}, chosen: null, title: "" };

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

function fmt(value, digits = 6) {
  if (value === undefined || value === null || Number.isNaN(value)) return "–";
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

// --- controls ---------------------------------------------------------------------------
// A log-scale slider (temperature) runs over 0..1000 from its low to its high end; position 0
// is the value 0 (greedy), and any value >= 0 may be typed.
function logScale(name) {
  const slider = SETTING[name].slider;
  if (slider.scale !== "log") return null;
  const low = Math.log10(slider.low);
  return { low, span: Math.log10(slider.high) - low };
}

function sliderPosition(name, value) {
  const log = logScale(name);
  if (!log) return value;
  return value <= 0 ? 0 : Math.min(1000, Math.max(1, ((Math.log10(value) - log.low) / log.span) * 1000));
}

function sliderValue(name, position) {
  const log = logScale(name);
  if (!log) return Number(position);
  return Number(position) === 0 ? 0 : Number((10 ** (log.low + (log.span * position) / 1000)).toPrecision(4));
}

// The sliders in their groups (settings.js), then the chain's two choices.
function buildControls() {
  buildSettingsPanel();
  for (const [select, names] of [["order", Object.keys(DATA.engine.presets)],
    ["mode", DATA.engine.modes]]) {
    for (const name of names) {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      $(select).append(option);
    }
  }
  $("order").value = DATA.engine.default_order;
  $("order").addEventListener("change", changed);
  $("mode").addEventListener("change", changed);
}

function setSetting(name, value) {
  if (name === "order" && Array.isArray(value)) {
    const preset = Object.entries(DATA.engine.presets)
      .find(([, order]) => JSON.stringify(order) === JSON.stringify(value));
    if (preset) $("order").value = preset[0];
    return;
  }
  if (name === "order" || name === "mode") {
    // a value from a link is checked: an unknown one leaves the control as it is
    if ([...$(name).options].some((option) => option.value === value)) $(name).value = value;
    return;
  }
  if (setTextSetting(name, value)) return;  // the grammar's box (grammar.js)
  const number = $(`set-${name}`);
  if (!number || value === "" || Number.isNaN(Number(value))) return;
  number.value = value;
  $(`range-${name}`).value = sliderPosition(name, Number(value));
  syncValueText(name);
}

// The settings as the chain takes them: those the library takes in the chosen order (the
// others, greyed out, are those it would refuse: a stage the order lacks, and with mirostat
// on, what mirostat replaces), each when it is not at its "off" value.
function currentSettings() {
  const order = $("order").value;
  const out = { order, mode: $("mode").value };
  const mirostat = Number($("set-mirostat").value) > 0;
  const unusable = DATA.engine.unusable[order][mirostat ? "mirostat" : "alone"];
  for (const { name, off } of SLIDERS) {
    const value = Number($(`set-${name}`).value);
    const usable = !unusable.includes(name);
    markUnused(name, !usable);
    if (!usable || $(`set-${name}`).value === "") continue;
    if (value !== off) out[name] = value;
  }
  return { ...out, ...textSettings(unusable) };
}

// --- the view ---------------------------------------------------------------------------
function decodeRow(b64) {
  const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

// The first runs of the engine are slow while the JavaScript compiler warms up: run a few
// typical settings once on the first step, so that slider moves are timed warm.
let warmedUp = false;
function warmUp(step) {
  if (warmedUp) return;
  warmedUp = true;
  for (const settings of [{ temperature: 0.7, top_p: 0.9 }, { top_k: 40, min_p: 0.05 },
    { typical_p: 0.9, repetition_penalty: 1.2 }, { epsilon: 0.001, eta: 0.001 }]) {
    SamplerEngine.evaluate(step, settings, {});
  }
}

function showStep(stepView, context, title, chosen) {
  view.step = SamplerEngine.prepare(decodeRow(stepView.logits_float32_b64));
  warmUp(view.step);
  view.labels = stepView.labels;
  // the grammar's mask at this step (grammar.js), as the engine's twin of the stage takes it
  const grammar = decodeMask(stepView.grammar);
  view.context = { ...context, history: stepView.history, dry: stepView.dry, grammar };
  view.legal = legalTokens(grammar, view.step.raw.length);
  view.title = title;
  view.chosen = chosen;
  $("step-title").textContent = title;
  recompute();
}

function label(token) {
  const text = view.labels[String(token)];
  return text === undefined ? `#${token}` : text;
}

// The first typed value the library would refuse (marked in its box), or null.
function settingProblem() {
  let first = null;
  for (const { name } of SLIDERS) {
    const box = $(`set-${name}`);
    const message = box.value === "" ? null : SamplerEngine.problem(name, Number(box.value));
    box.classList.toggle("invalid", message !== null);
    first = first || message;
  }
  return first;
}

function recompute() {
  if (!view.step) return;
  const problem = settingProblem();
  if (problem || view.settingProblem) showError(problem);
  view.settingProblem = problem;
  if (problem) return;
  const started = performance.now();
  const settings = currentSettings();
  if (grammarStale(settings)) {  // the mask is another grammar's: the server is asked
    $("chain-line").textContent = "the grammar changed: the bars wait for the server's mask " +
      "of it (a grammar it refuses says why above)";
    return;
  }
  const row = SamplerEngine.rowOf(settings);
  const active = row.stages.filter((name) => row.on[name] || name === "mirostat");
  $("chain-line").textContent = `chain: ${row.stages.join(" → ")}; acting: ` +
    (active.length ? active.join(" → ") : "none (the model's own distribution)");
  const result = SamplerEngine.evaluate(view.step, settings, view.context);
  renderReadout(result);
  showGrammarParts(row.on.grammar && row.stages.includes("grammar"));
  renderBars(result, settings);
  const ms = performance.now() - started;
  $("recompute-ms").textContent = `${ms.toFixed(2)} ms (engine ${result.ms.toFixed(2)} ms)`;
  $("recompute-ms").dataset.ms = ms;
  window.lastResult = result;  // read by the browser tests
}

function renderReadout(result) {
  for (const cell of document.querySelectorAll("[data-stat]")) {
    cell.textContent = fmt(result.stats[cell.dataset.stat]);
  }
  for (const cell of document.querySelectorAll("[data-bits]")) {
    cell.textContent = fmt(result.stats[cell.dataset.bits] / Math.LN2);
  }
  for (const cell of document.querySelectorAll("[data-note]")) {  // the grammar's telemetry
    const value = result.notes[cell.dataset.note];
    cell.textContent = fmt(cell.dataset.unit === "bits" ? value / Math.LN2 : value);
  }
  const notes = Object.entries(result.notes).map(([k, v]) => `${k} ${fmt(v, 4)}`);
  if (result.xtcChance > 0) notes.push(`XTC fires with p ${result.xtcChance}: final p is the mixture`);
  $("telemetry").textContent = notes.join(" · ");
}

// --- start ------------------------------------------------------------------------------
function selectTab(name) {
  document.body.dataset.tab = name;
  for (const tab of document.querySelectorAll(".tab")) {
    const selected = tab.dataset.tab === name;
    tab.classList.toggle("active", selected);
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;  // the tab list is one Tab stop (tabs.js: ← → move)
  }
  for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== `tab-${name}`;
  if (name === "runs") listRuns();
  if (name === "cheatsheet") renderCheatSheet();
  writeFragment();
}

function start() {
  document.body.classList.add(DATA.mode);
  $("model").textContent = DATA.model;
  buildControls();
  const { missing, extra } = SamplerEngine.unpaired();
  if (missing.length || extra.length) {
    // a stage of the table the page cannot compute: say so rather than draw something else
    showError(`the page's engine is out of step with the stage table: no twin of ` +
      `${missing.join(", ") || "none"}; twins of no stage: ${extra.join(", ") || "none"}`);
  }
  buildReadoutNotes();
  // the first view as the server (or the file) gives it; a link's fragment may change it
  if (DATA.mode === "server" && DATA.prompt !== undefined) $("prompt").value = DATA.prompt;
  if (DATA.mode === "server" && DATA.chat !== undefined) $("chat").checked = DATA.chat;
  if (DATA.settings) for (const [name, value] of Object.entries(DATA.settings)) setSetting(name, value);
  if (DATA.mode === "server") $("chat").checked = DATA.chat === true;  // the model's default
  const params = readFragment();
  openActiveGroups();
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => selectTab(tab.dataset.tab));
  }
  setupCheatSheet();
  if (DATA.mode === "server") {
    $("load").addEventListener("click", () => loadNextToken());
    $("chat").addEventListener("change", () => loadNextToken());
    setupGeneration();
    const forced = fragmentForced(params);
    loadNextToken(forced, forced.length ? `after the prompt and ${forced.length} tokens from the link`
      : undefined);
  } else {
    buildOffline();
    showOfflineStep(Math.min(Number(params.get("step") || 0), DATA.steps.length - 1));
  }
  const tab = params.get("tab");
  selectTab(["explore", "cheatsheet", "runs"].includes(tab) && (tab !== "runs" || DATA.mode === "server")
    ? tab : "explore");
}

document.addEventListener("DOMContentLoaded", start);
