// The grammar box: the table's string settings (the constraint's text and its syntax) as a
// textarea and a choice, and the step's mask. The page cannot run a grammar's matcher (it is
// llguidance over the model's vocabulary): the server sends each step's mask (the allowed ids,
// or a bitmask: sampler/serve/grammar_mask.py), the engine's twin applies it on every slider
// move, and only a new grammar asks the server again. Offline (`sampler explore`), the file
// holds the masks of its own grammar's steps, so the box shows that grammar and is read-only.
"use strict";

// The settings the table gives no slider and that are strings: each gets a box here.
const TEXT_SETTINGS = SETTINGS.filter((s) => s.kind === "str" && !s.slider);
const TEXT_SETTING_NAMES = new Set(TEXT_SETTINGS.map((s) => s.name));
const GRAMMAR_WAIT_MS = 400;  // typing: ask for the mask once the grammar rests this long
let grammarTimer = null;

function textSettingRow(setting) {
  const { name } = setting;
  const choices = (DATA.engine.choices || {})[name];
  const wrap = element("div", "setting text-setting" + (choices ? " choice" : ""));
  wrap.dataset.name = name;
  wrap.dataset.stage = setting.stage;
  const label = wordsAndName(setting.title, name);
  label.htmlFor = `set-${name}`;
  let box;
  if (choices) {
    box = document.createElement("select");
    for (const value of choices) {
      const option = element("option", "", `${DATA.engine.choice_words[value] || value} (${value})`);
      option.value = value;
      box.append(option);
    }
  } else {
    box = document.createElement("textarea");
    box.rows = 4;
    box.spellcheck = false;
    box.placeholder = `empty = off; e.g. ${setting.example}`;
  }
  box.id = `set-${name}`;
  box.value = setting.off;
  const { help, unused, described } = settingNotes(setting);
  if (DATA.mode !== "server") {
    const reason = element("div", "note setting-help offline-reason", offlineReason());
    reason.id = `offline-${name}`;
    described.push(reason.id);
    if (choices) box.disabled = true; else box.readOnly = true;
    help.after(reason);
    wrap.append(label, box, help, reason, unused);
  } else {
    wrap.append(label, box, help, unused);
  }
  box.setAttribute("aria-describedby", described.join(" "));
  box.addEventListener(choices ? "change" : "input", changed);
  return wrap;
}

// Why the offline box cannot be edited: its masks were computed for the file's grammar.
function offlineReason() {
  return (DATA.settings || {}).grammar
    ? "This file holds each step's mask for the grammar it was written with (read-only here): " +
      "another grammar needs the model (sampler serve)."
    : "This file was written without a grammar (read-only here): sampler explore --grammar " +
      "FILE embeds each step's mask, or sampler serve takes any grammar.";
}

// Set a string setting's box (from a link, a file or a generated row); false if not one.
function setTextSetting(name, value) {
  if (!TEXT_SETTING_NAMES.has(name)) return false;
  const box = $(`set-${name}`);
  if (typeof value !== "string") return true;
  if (box.tagName === "SELECT" && ![...box.options].some((o) => o.value === value)) return true;
  box.value = value;
  return true;
}

// The string settings the chain takes: a setting that only modifies its stage (the syntax)
// goes with the one that switches the stage on (the grammar's text), never alone.
function textSettings(unusable) {
  const out = {};
  for (const { name, off, activates } of TEXT_SETTINGS) {
    const usable = !unusable.includes(name);
    markUnused(name, !usable);
    const value = $(`set-${name}`).value;
    if (usable && activates && value !== off) out[name] = value;
  }
  for (const { name, off, activates, stage } of TEXT_SETTINGS) {
    const switched = TEXT_SETTINGS.some((s) => s.stage === stage && s.activates && s.name in out);
    const value = $(`set-${name}`).value;
    if (!activates && switched && value !== off) out[name] = value;
  }
  return out;
}

function textSettingsActive() {
  return TEXT_SETTINGS.some(({ name, off }) => $(`set-${name}`).value !== off);
}

// The grammar the mask is for ("" without one).
function grammarKey(settings) {
  return settings.grammar ? `${settings.grammar_syntax || "gbnf"}\n${settings.grammar}` : "";
}

// The shown step's mask is not the current grammar's (it was edited): the server is asked.
function grammarStale(settings = currentSettings()) {
  return grammarKey(settings) !== "" && grammarKey(settings) !== view.grammarKey;
}

function fetchGrammarSoon() {
  clearTimeout(grammarTimer);
  grammarTimer = setTimeout(() => {
    if (!grammarStale()) return;
    if (view.loading) fetchGrammarSoon(); else reloadView();
  }, GRAMMAR_WAIT_MS);
}

// The answer's mask (grammar_mask.py: ids, or a little-endian bitmask) as the allowed ids.
function decodeMask(mask) {
  if (!mask) return undefined;
  if (mask.ids) return mask.ids;
  const bytes = Uint8Array.from(atob(mask.bits_b64), (ch) => ch.charCodeAt(0));
  const ids = [];
  for (let i = 0; i < bytes.length; i++) {
    for (let bit = 0; bit < 8; bit++) if (bytes[i] & (1 << bit)) ids.push(8 * i + bit);
  }
  return ids;
}

// Per token, 1 where the step's mask allows it (null without a mask): the bars' marks.
function legalTokens(ids, size) {
  if (!ids) return null;
  const legal = new Uint8Array(size);
  for (const t of ids) legal[t] = 1;
  return legal;
}

// Whether the grammar forbids `token` at the shown step under the current settings.
function forbidden(token, settings) {
  return Boolean(settings.grammar && view.legal && !view.legal[token]);
}

// The grammar's readouts and legend entry show only while a grammar acts.
function showGrammarParts(on) {
  $("grammar-readout").hidden = !on;
  $("grammar-key").hidden = !on;
}
