// The offline page of `sampler explore`: the text's steps, each with its embedded logits row.
"use strict";

function showOfflineStep(index) {
  const step = DATA.steps[index];
  view.offlineStep = index;
  for (const span of document.querySelectorAll("#offline-text .tok")) {
    span.classList.toggle("selected", Number(span.dataset.step) === index);
  }
  const title = `step ${index + 1} of ${DATA.steps.length}` +
    (step.token === null ? "" : `: the text went on with ${JSON.stringify(step.label)}`);
  showStep(step.view, {}, title, step.token);
  writeFragment();
}

function buildOffline() {
  const box = $("offline-text");
  const prompt = document.createElement("span");
  prompt.className = "prompt-text";
  prompt.textContent = DATA.prompt;
  box.append(prompt);
  DATA.steps.forEach((step, index) => {
    const span = document.createElement("span");
    span.className = "tok";
    span.dataset.step = index;
    span.textContent = step.token === null ? " ▸" : step.text;
    span.addEventListener("click", () => showOfflineStep(index));
    box.append(span);
  });
}

