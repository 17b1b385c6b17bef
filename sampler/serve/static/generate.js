// Generation in the page: greedy beside N samples streamed from POST /api/generate (one batch),
// the step where each sample leaves the greedy path marked, a token's step opened in the
// next-token view, a branch on any alternative, the session saved as a run.
"use strict";

// columns: every generated row shown; finished: the requests that streamed to their end,
// which is what a save re-runs (the server checks the tokens against its re-run).
const session = { columns: [], finished: [], controller: null, selection: null, prompt: "",
  chat: false };

// Server-sent events from a POST (EventSource can only GET): "event: NAME\ndata: JSON\n\n".
async function* readEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      yield [name, JSON.parse(data)];
    }
  }
}

function newColumn(title, request, forced, branch) {
  const box = document.createElement("div");
  box.className = "generation";
  const heading = document.createElement("h3");
  heading.textContent = title;
  const text = document.createElement("div");
  text.className = "text";
  text.setAttribute("aria-label", `${title}: generated tokens (← → move, Enter opens a step)`);
  text.setAttribute("role", "group");
  const prompt = document.createElement("span");
  prompt.className = "prompt-text";
  const prefixText = branch ? branch.prefixText : session.prompt;
  prompt.textContent = prefixText;
  text.append(prompt);
  box.append(heading, text);
  $("generations").append(box);
  // prefixText: all the text before this column's own tokens (a branch's forced token too)
  const column = { title, request, forced, tokens: [], texts: [], labels: [], stats: [], tops: [],
    box, text, heading, maxNew: request.max_new_tokens, divergence: null, prefixText };
  tokenList(text, (index) => openStep(column, index), (index) => alternativesTip(
    `step ${column.forced.length + index + 1}: ${visibleText(column.labels[index])}`,
    drawnProbability(column.stats[index]), column.tops[index], column.tokens[index]));
  return column;
}

// The drawn token's probability under the law it was drawn from (its surprisal's exp).
function drawnProbability(stats) {
  return stats.surprisal === null || stats.surprisal === undefined ? NaN : Math.exp(-stats.surprisal);
}

function appendToken(column, item) {
  const index = column.tokens.length;
  column.tokens.push(item.token);
  column.texts.push(item.text);
  column.stats.push(item.stats);
  column.labels.push(item.label);
  column.tops.push(item.top);
  const p = drawnProbability(item.stats);
  const span = tokenSpan(column.text, index,
    `${visibleText(item.label)}, step ${column.forced.length + index + 1}, p ${fmt(p, 4)}`);
  span.classList.add(...[probabilityClass(p)].filter(Boolean));
  span.dataset.token = item.token;
  span.dataset.p = p;
  span.append(...runningNodes(shownText(item.text, item.label)));
  span.addEventListener("click", () => openStep(column, index));
  column.text.append(span);
}

async function stream(body, columns) {
  const controller = new AbortController();
  session.controller = controller;
  $("stop").disabled = false;
  $("generate").disabled = true;
  try {
    const response = await fetch("/api/generate", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body), signal: controller.signal,
    });
    if (!response.ok) {
      const answer = await response.json().catch(() => ({}));
      throw new Error(answer.error || `HTTP ${response.status}`);
    }
    let finished = false;
    for await (const [name, data] of readEvents(response)) {
      if (name === "start") {
        data.rows.forEach((row, i) => {
          columns[i].request.seed = row.settings.seed;
          body.rows[i].seed = row.settings.seed;
        });
      } else if (name === "step") {
        for (const item of data.rows) appendToken(columns[item.row], item);
      } else if (name === "done") {
        finished = true;
        markDivergence(data, columns);
        $("save").textContent = "Save as run";
        session.finished.push({ ...body, tokens: data.rows.map((row) => row.token_ids) });
      } else if (name === "error") {
        throw new Error(data.error);
      }
    }
    if (!finished) throw new Error("the generation stream ended before its last event");
    showError("");
  } catch (error) {
    if (error.name !== "AbortError") showError(error.message);
  } finally {
    session.controller = null;
    $("stop").disabled = true;
    $("generate").disabled = false;
    $("save").disabled = session.finished.length === 0;
  }
}

function markDivergence(done, columns) {
  for (const row of done.rows) {
    const column = columns[row.row];
    column.done = true;
    column.box.classList.add("done");
    if (row.divergence_step === undefined || row.divergence_step === null) continue;
    column.divergence = row.divergence_step;
    const span = column.text.querySelector(`.tok[data-step="${row.divergence_step}"]`);
    if (span) span.classList.add("diverged");
    column.heading.textContent += ` · leaves greedy at step ${row.divergence_step + 1}`;
  }
}

function generateFromPage() {
  const settings = currentSettings();
  const samples = Math.max(0, Math.min(7, Number($("samples").value) || 0));
  const seed = Number($("seed").value) || 0;
  const maxNew = Number($("max-tokens").value) || 24;
  const greedy = { ...settings, mode: "greedy", seed };
  delete greedy.xtc_probability;  // XTC's coin would move greedy off its argmax
  const rows = [greedy];
  for (let k = 0; k < samples; k++) rows.push({ ...settings, seed, sample: k });
  session.prompt = $("prompt").value;
  session.chat = $("chat").checked;
  $("generations").replaceChildren();
  session.columns = [];
  session.finished = [];
  const body = { prompt: session.prompt, chat: session.chat, forced: [], rows,
    max_new_tokens: maxNew, top: 5 };
  const columns = rows.map((row, k) => newColumn(k === 0 ? "greedy" : `sample ${k} · seed ${seed}`,
    { ...row, max_new_tokens: maxNew }, [], null));
  session.columns.push(...columns);
  return stream(body, columns);
}

// Open a generated token's step in the next-token view, with the sliders set to its row.
function openStep(column, index) {
  for (const span of document.querySelectorAll(".tok.selected")) span.classList.remove("selected");
  column.text.querySelector(`.tok[data-step="${index}"]`).classList.add("selected");
  // the row's settings, but not greedy's mode: the next Generate would make every sample greedy
  const skip = new Set(["seed", "sample", "max_new_tokens", "mode"]);
  for (const [name, value] of Object.entries(column.request)) {
    if (!skip.has(name)) setSetting(name, value);
  }
  for (const { name, off } of [...SLIDERS, ...TEXT_SETTINGS]) {
    if (!(name in column.request)) setSetting(name, off);
  }
  session.selection = { column, index };
  const context = stateContext(column.stats[index]);
  const forced = [...column.forced, ...column.tokens.slice(0, index)];
  const step = column.forced.length + index + 1;  // counted from the prompt
  return loadNextToken(forced, `${column.title}, step ${step}: click a bar (or Enter on it) to branch here`,
    { chosen: column.tokens[index], context, keepSelection: true });
}

// Branch: the same row and seed, from the selected step on, with `token` forced there.
function branch(token) {
  const selection = session.selection;
  if (!selection || session.controller) return null;
  const { column, index } = selection;
  if (forbidden(token, currentSettings())) {  // the server would refuse it too (rows[0]: ...)
    showError(`token ${token} (${visibleText(label(token))}) is not allowed by the grammar at ` +
      "this step: branch on a token it allows (not marked ⊘)");
    return null;
  }
  const forced = [...column.forced, ...column.tokens.slice(0, index), token];
  const maxNew = Math.max(1, column.maxNew - index - 1);
  const row = { ...column.request };
  delete row.max_new_tokens;
  const shown = label(token);
  const prefixText = column.prefixText + column.texts.slice(0, index).join("");
  const step = column.forced.length + index + 1;
  const title = `branch of ${column.title} at step ${step}: ${visibleText(shown)}`;
  const child = newColumn(title, { ...row, max_new_tokens: maxNew }, forced, { prefixText });
  const mark = document.createElement("span");
  mark.className = "tok forced";
  mark.title = "the token this branch was forced to take";
  mark.append(...runningNodes(shown));
  child.text.append(mark);
  child.prefixText += shown;
  session.columns.push(child);
  return stream({ prompt: session.prompt, chat: session.chat, forced, rows: [row],
    max_new_tokens: maxNew, top: 5 }, [child]);
}

async function saveSession() {
  try {
    const generations = session.finished.map(({ top, ...request }) => request);
    if (!generations.length) throw new Error("nothing to save: no generation has finished yet");
    const answer = await api("/api/runs", { generations });
    showError("");
    $("save").textContent = `Saved as ${answer.id}`;
    $("save").disabled = true;  // saved; a new generation makes something new to save
  } catch (error) {
    showError(error.message);
  }
}

function setupGeneration() {
  $("generate").addEventListener("click", generateFromPage);
  $("stop").addEventListener("click", () => session.controller && session.controller.abort());
  $("save").addEventListener("click", saveSession);
  $("bars").addEventListener("click", (event) => {
    const row = event.target.closest(".bar-row");
    if (row) branch(Number(row.dataset.token));
  });
  $("bars").addEventListener("keydown", (event) => {
    const row = event.target.closest(".bar-row");
    if (!row || (event.key !== "Enter" && event.key !== " ")) return;
    event.preventDefault();
    branch(Number(row.dataset.token));
  });
}
