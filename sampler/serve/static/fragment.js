// The URL fragment: the view's settings, prompt and tab, so that a link reproduces a view;
// every change recomputes and (after a pause) rewrites the fragment.
"use strict";

let fragmentTimer = null;
function changed() {
  recompute();
  clearTimeout(fragmentTimer);
  fragmentTimer = setTimeout(writeFragment, 150);
  if (DATA.mode === "server" && view.step && needsRefetch()) reloadView();
  // a new grammar (not a slider) needs the server's mask, asked once the typing rests
  if (DATA.mode === "server" && grammarStale()) fetchGrammarSoon();
}

function needsRefetch() {
  const settings = currentSettings();
  return settings.dry_multiplier > 0 && !view.context.dry && !view.loading;
}

function writeFragment() {
  const params = new URLSearchParams();
  params.set("tab", document.body.dataset.tab || "explore");
  if (DATA.mode === "server") {
    params.set("prompt", $("prompt").value);
    params.set("chat", $("chat").checked ? "1" : "0");  // either way: the default is the model's
    // the tokens forced after the prompt: an opened step of a generated text, or a branch
    const forced = view.request ? view.request.forced : [];
    if (forced.length) params.set("forced", forced.join(","));
  } else if (view.offlineStep !== undefined) params.set("step", view.offlineStep);
  for (const [key, value] of Object.entries(currentSettings())) params.set(key, value);
  params.set("cs", $("cs-logits").value);
  params.set("cst", $("cs-temperature").value);
  history.replaceState(null, "", `#${params}`);
}

function readFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  for (const [key, value] of params) {
    if (key === "prompt") $("prompt").value = value;
    else if (key === "chat") $("chat").checked = value === "1";
    else if (key === "cs") $("cs-logits").value = value;
    else if (key === "cst") $("cs-temperature").value = value;
    // offline, the grammar is the file's own (its masks are embedded): a link cannot change it
    else if (DATA.mode !== "server" && TEXT_SETTING_NAMES.has(key)) continue;
    else if (!["tab", "step", "forced"].includes(key)) setSetting(key, value);
  }
  return params;
}


// The same step again (the server computes what the page cannot: DRY's repeats).
function reloadView() {
  const request = view.request || { forced: [], title: undefined, extra: {} };
  return loadNextToken(request.forced, request.title, request.extra);
}

// The forced tokens a link names (ids, comma-separated), or none when they are not ids.
function fragmentForced(params) {
  const text = params.get("forced");
  if (!text) return [];
  const ids = text.split(",").map(Number);
  return ids.every((id) => Number.isInteger(id) && id >= 0) ? ids : [];
}
