// The second and third tabs: the cheat sheet (three logits, a τ slider) and the run log.
"use strict";

function parseLogits(text) {
  const values = text.split(",").map((part) => Number(part.trim()));
  if (values.length < 2 || values.some((v) => !Number.isFinite(v))) {
    throw new Error(`logits ${JSON.stringify(text)}: give at least two finite numbers, comma-separated`);
  }
  return values;
}

function renderCheatSheet() {
  let logits;
  try {
    logits = parseLogits($("cs-logits").value);
  } catch (error) {
    showError(error.message);
    return;
  }
  const tau = Number($("cs-temperature").value);
  if (!(tau >= 0)) { showError(`temperature ${$("cs-temperature").value}: allowed τ >= 0`); return; }
  showError("");
  const sheet = SamplerEngine.cheatSheet(logits, tau);
  const rows = [["token", "logit", "softmax p", "log p", "hardmax"]];
  logits.forEach((logit, i) => rows.push([
    String.fromCharCode(65 + (i % 26)), fmt(logit, 2), fmt(sheet.probs[i], 6),
    sheet.probs[i] > 0 ? fmt(Math.log(sheet.probs[i]), 6) : "-inf", fmt(sheet.hardmax[i], 2),
  ]));
  const table = $("cs-table");
  table.replaceChildren(...rows.map((cells, r) => {
    const tr = document.createElement("tr");
    cells.forEach((text, c) => {
      const cell = document.createElement(r === 0 ? "th" : "td");
      cell.textContent = text;
      if (r > 0) cell.dataset.cs = `${c}-${r - 1}`;
      tr.append(cell);
    });
    return tr;
  }));
  const summary = document.createElement("tr");
  const cell = document.createElement("td");
  cell.colSpan = 5;
  cell.id = "cs-summary";
  cell.textContent = `argmax ${String.fromCharCode(65 + sheet.argmax)} · argmin ` +
    `${String.fromCharCode(65 + sheet.argmin)} · entropy ${fmt(sheet.entropy_nats)} nats = ` +
    `${fmt(sheet.entropy_bits)} bits`;
  cell.dataset.entropy = sheet.entropy_nats;
  summary.append(cell);
  table.append(summary);
  syncCheatSheetSlider();
  drawCheatSheetPicture(logits, tau);
}

function setupCheatSheet() {
  const range = $("cs-range"), number = $("cs-temperature");
  range.value = sliderPosition("temperature", Number(number.value));
  range.addEventListener("input", () => {
    number.value = sliderValue("temperature", range.value);
    renderCheatSheet();
    writeFragment();
  });
  for (const input of [number, $("cs-logits")]) {
    input.addEventListener("input", () => {
      if (input === number) range.value = sliderPosition("temperature", Number(number.value));
      renderCheatSheet();
      writeFragment();
    });
  }
}

async function listRuns() {
  if (DATA.mode !== "server") return;
  try {
    const runs = await api("/api/runs");
    const table = $("runs-list");
    table.replaceChildren(cellRow("th", ["run", "created", "kind", "model", "status"]), ...runs.map((run) => {
      const tr = document.createElement("tr");
      for (const key of ["id", "created_at", "kind", "model", "status"]) {
        const td = document.createElement("td");
        td.textContent = run[key];
        tr.append(td);
      }
      tr.addEventListener("click", () => openRun(run.id));
      return tr;
    }));
    showError("");
  } catch (error) {
    showError(error.message);
  }
}

const STEP_COLUMNS = ["step", "token", "entropy_base", "entropy_temp", "entropy_final",
  "surprisal", "top1_prob", "kept_tokens", "kept_mass"];

function cellRow(tag, values) {
  const tr = document.createElement("tr");
  for (const value of values) {
    const cell = document.createElement(tag);
    cell.textContent = typeof value === "number" ? fmt(value, 4) : String(value ?? "–");
    tr.append(cell);
  }
  return tr;
}

// One completion of a run: its text (model output, as text) and its per-step statistics.
function completionBlock(completion) {
  const block = document.createElement("div");
  block.className = "generation";
  const text = document.createElement("div");
  text.className = "text";
  const prompt = document.createElement("span");
  prompt.className = "prompt-text";
  prompt.textContent = completion.prompt || "";
  text.append(prompt, completion.text || "");
  const table = document.createElement("table");
  table.className = "steps";
  table.append(cellRow("th", STEP_COLUMNS),
    ...(completion.steps || []).slice(0, 256).map((step) => cellRow("td", STEP_COLUMNS.map((k) => step[k]))));
  const settings = document.createElement("div");
  settings.className = "note";
  settings.textContent = `row ${completion.row_index} · ${completion.mode} · τ ${completion.temperature}` +
    ` · ${completion.finish_reason || ""}`;
  block.append(settings, text, table);
  return block;
}

async function openRun(id) {
  try {
    const answer = await api(`/api/runs/${encodeURIComponent(id)}`);
    const box = $("run-view");
    const heading = document.createElement("h3");
    heading.textContent = `${answer.run.id} · ${answer.run.kind} · ${answer.completions.length} completions`;
    const items = answer.completions.slice(0, 50).map(completionBlock);
    box.replaceChildren(heading, ...items);
    showError("");
  } catch (error) {
    showError(error.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("runs-refresh").addEventListener("click", listRuns);
});
