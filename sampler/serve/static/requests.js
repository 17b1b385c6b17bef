// The page's calls to its server: JSON in and out, errors shown in the page's error bar.
"use strict";

async function api(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}

async function loadNextToken(forced = [], title = "next token after the prompt", extra = {}) {
  view.loading = true;
  // bars branch only in an opened step of a generated column
  if (!extra.keepSelection && typeof session !== "undefined") session.selection = null;
  try {
    const settings = currentSettings();
    const answer = await api("/api/next-token", {
      prompt: $("prompt").value, chat: $("chat").checked, forced, settings, top: 20,
    });
    showError("");
    view.grammarKey = grammarKey(settings);  // the grammar the answer's mask is for
    showStep(answer, extra.context || {}, `${title} (${answer.prompt_tokens} tokens in)`, extra.chosen);
    view.request = { forced, title, extra: { ...extra, keepSelection: true } };
    writeFragment();
  } catch (error) {
    showError(error.message);
  } finally {
    view.loading = false;
  }
}
