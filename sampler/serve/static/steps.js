// Stepping through a text: the offline page's steps (`sampler explore`, each with its embedded
// logits row), and the arrow keys, which step through the offline text or a generated column.
"use strict";

// What a step's law depends on beyond its logits and settings, as the engine's context: the
// state stateful stages had before it (mirostat's μ, adaptive-p's average), where recorded.
function stateContext(recorded) {
  const context = {};
  const known = (value) => value !== null && value !== undefined;
  if (known(recorded.mirostat_mu)) context.mirostatMu = recorded.mirostat_mu;
  if (known(recorded.adaptive_average)) context.adaptiveAverage = recorded.adaptive_average;
  return context;
}

function showOfflineStep(index) {
  const step = DATA.steps[index];
  view.offlineStep = index;
  for (const span of document.querySelectorAll("#offline-text .tok")) {
    span.classList.toggle("selected", Number(span.dataset.step) === index);
  }
  const title = `step ${index + 1} of ${DATA.steps.length}` +
    (step.token === null ? "" : `: the text went on with ${visibleText(step.label)}`);
  const context = stateContext(step);
  view.grammarKey = grammarKey(DATA.settings || {});  // the file's masks are its grammar's
  showStep(step.view, context, `${title} (the bars are this step's; branching needs the server)`,
    step.token);
  writeFragment();
}

function buildOffline() {
  const box = $("offline-text");
  const prompt = document.createElement("span");
  prompt.className = "prompt-text";
  prompt.textContent = DATA.prompt;
  box.append(prompt);
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", "the text, a token a step (← → move, Enter opens a step)");
  DATA.steps.forEach((step, index) => {
    const shown = step.token === null ? "the next token" : visibleText(step.label);
    const span = tokenSpan(box, index, `${shown}, step ${index + 1}`);
    if (step.token === null) span.textContent = " ▸";
    else span.append(...runningNodes(shownText(step.text, step.label)));
    span.addEventListener("click", () => showOfflineStep(index));
    box.append(span);
  });
  tokenList(box, showOfflineStep, () => null);
}

// Arrow keys step through the selected text (a generated column, or the offline text).
function stepBy(delta) {
  if (DATA.mode !== "server") {
    const next = (view.offlineStep || 0) + delta;
    if (next >= 0 && next < DATA.steps.length) showOfflineStep(next);
    return;
  }
  const selection = session.selection;
  if (!selection) return;
  const next = selection.index + delta;
  if (next >= 0 && next < selection.column.tokens.length) openStep(selection.column, next);
}

document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, textarea, select, [role=tablist]")) return;
  if (event.key === "ArrowRight") stepBy(1);
  if (event.key === "ArrowLeft") stepBy(-1);
});
