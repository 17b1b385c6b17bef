// The settings panel: the stage table's settings in its groups (collapsible), each stage with
// its summary and peers, each slider named in words beside its field name, log scales said so;
// and the readouts' "what this means" notes. Every word comes from the table (DATA.engine:
// groups, stages' title/summary/peer, settings' title/help/allowed) except the readout notes.
"use strict";

// Groups open at first: the ones the first view teaches with. Others open when a link or a
// file switches one of their settings on.
const OPEN_GROUPS = ["temperature", "truncation"];

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// "Top-p (nucleus) top_p": the words, then the field name in smaller monospace.
function wordsAndName(title, name) {
  const label = element("label", "setting-name");
  label.append(element("span", "words", title || name), " ", element("code", "field", name));
  return label;
}

// The slider's position in words for a screen reader: the real value (a log slider's position,
// 0..1000, is not it); also kept beside it as the number box shows.
function syncValueText(name) {
  const range = $(`range-${name}`);
  if (range && logScale(name)) range.setAttribute("aria-valuetext", $(`set-${name}`).value || "none");
}

// A setting's help (what it does, what is allowed) and its greyed-out note, and the ids a
// control's aria-describedby lists: the same for a slider's row and a text or choice box.
function settingNotes(setting) {
  const { name } = setting;
  const help = element("div", "note setting-help", `${setting.help} Allowed: ${setting.allowed}.`);
  help.id = `help-${name}`;
  const unused = element("div", "note unused-note", "Not used by this chain order (greyed out).");
  unused.id = `unused-${name}`;
  unused.hidden = true;
  return { help, unused, described: [help.id, unused.id] };
}

function settingRow(setting) {
  const { name, slider } = setting;
  const wrap = element("div", "setting");
  wrap.dataset.name = name;
  if (setting.stage) wrap.dataset.stage = setting.stage;
  const label = wordsAndName(setting.title, name);
  label.id = `label-${name}`;
  label.htmlFor = `set-${name}`;
  const range = document.createElement("input");
  range.type = "range";
  range.id = `range-${name}`;
  range.setAttribute("aria-labelledby", label.id);
  const number = document.createElement("input");
  number.type = "number";
  number.id = `set-${name}`;
  number.step = "any";
  const { help, unused, described } = settingNotes(setting);
  if (slider.scale === "log") {
    range.min = 0; range.max = 1000; range.step = 1;
    const scale = element("div", "note scale", `Log scale: ${slider.low} to ${slider.high}, each ` +
      `step of the slider multiplies τ; far left is 0 (greedy). Type any value in the box.`);
    scale.id = `scale-${name}`;
    described.unshift(scale.id);
    wrap.append(label, range, number, scale);
  } else {
    range.min = slider.low; range.max = slider.high; range.step = slider.step;
    wrap.append(label, range, number);
  }
  range.setAttribute("aria-describedby", described.join(" "));
  number.setAttribute("aria-describedby", described.join(" "));
  number.value = setting.off;
  range.value = sliderPosition(name, setting.off);
  syncValueText(name);
  range.addEventListener("input", () => {
    number.value = sliderValue(name, range.value);
    syncValueText(name);
    changed();
  });
  number.addEventListener("input", () => {
    if (number.value !== "") range.value = sliderPosition(name, Number(number.value));
    syncValueText(name);
    changed();
  });
  wrap.append(help, unused);
  return wrap;
}

function modeRow() {
  const words = DATA.engine.mode_words;
  const wrap = element("div", "setting choice");
  wrap.dataset.name = words.name;
  const label = wordsAndName(words.title, words.name);
  label.htmlFor = "mode";
  const select = document.createElement("select");
  select.id = "mode";
  const help = element("div", "note setting-help", words.help);
  help.id = "help-mode";
  select.setAttribute("aria-describedby", help.id);
  wrap.append(label, select, help);
  return wrap;
}

function stageBlock(stage) {
  const block = element("div", "stage");
  block.dataset.stage = stage ? stage.name : "row";
  if (stage) {
    const heading = element("h2", "stage-title", stage.title || stage.name);
    block.append(heading, element("p", "note stage-summary", stage.summary || ""),
      element("p", "note stage-peers", `Peers: ${stage.peer}`));
  }
  return block;
}

// One <details> per group of the table; a setting of an unknown group (a row added without
// one) goes in the last group rather than nowhere.
function buildSettingsPanel() {
  const box = $("sliders");
  const groups = DATA.engine.groups;
  const known = new Set(groups.map((g) => g.name));
  const groupOf = (setting) => (known.has(setting.group) ? setting.group : groups[groups.length - 1].name);
  const stages = Object.fromEntries(DATA.engine.stages.map((s) => [s.name, s]));
  for (const group of groups) {
    const details = element("details", "group");
    details.dataset.group = group.name;
    details.id = `group-${group.name}`;
    details.open = OPEN_GROUPS.includes(group.name);
    const summary = element("summary", "group-title", group.title);
    details.append(summary, element("p", "note group-summary", group.summary));
    if (DATA.engine.mode_words.group === group.name) details.append(modeRow());
    const blocks = new Map();
    // the string settings' boxes first (grammar.js: the grammar's text and syntax, the group's
    // largest control), then the sliders
    for (const setting of [...TEXT_SETTINGS, ...SLIDERS].filter((s) => groupOf(s) === group.name)) {
      const key = setting.stage || "";
      if (!blocks.has(key)) {
        blocks.set(key, stageBlock(stages[setting.stage]));
        details.append(blocks.get(key));
      }
      blocks.get(key).append(setting.slider ? settingRow(setting) : textSettingRow(setting));
    }
    box.append(details);
  }
}

// Open the groups holding a setting that is not at its "off" value (from a link or a file).
function openActiveGroups() {
  for (const { name, off } of SLIDERS) {
    const value = $(`set-${name}`).value;
    if (value !== "" && Number(value) !== off) $(`set-${name}`).closest("details").open = true;
  }
  for (const { name, off } of TEXT_SETTINGS) {
    if ($(`set-${name}`).value !== off) $(`set-${name}`).closest("details").open = true;
  }
}

// Greyed-out settings say so in words too (not by their colour alone).
function markUnused(name, unused) {
  document.querySelector(`.setting[data-name="${name}"]`).classList.toggle("unused", unused);
  $(`unused-${name}`).hidden = !unused;
}

// --- what the readouts mean ------------------------------------------------------------
const READOUT_NOTES = {
  entropy_base: "How unsure the model itself is about the next token: the entropy of softmax " +
    "of its raw logits (τ = 1, nothing applied). 0 means one certain token; ln N nats (log₂ N " +
    "bits) means all N tokens equally likely; e to the entropy (in nats) is roughly how many " +
    "tokens it hesitates between.",
  entropy_temp: "The same after logit bias, penalties and temperature, before anything is cut: " +
    "τ below 1 lowers it, above 1 raises it.",
  entropy_final: "The entropy of the distribution the token is actually drawn from, after " +
    "every stage: truncation lowers it by removing the tail.",
  kl_final_base: "How far the final distribution is from the model's own, KL(final ‖ model) = " +
    "Σ q·log(q / p): 0 when the settings change nothing, larger the more they reshape or cut.",
  kept_tokens: "How many tokens can still be drawn (probability above 0) after the chain.",
  kept_mass: "How much of the model's own probability (τ = 1) the kept tokens had: 1 means " +
    "nothing was cut; 0.6 means the cut tokens held 40 % of it together.",
  top1_prob: "The probability of the likeliest token in the final distribution: near 1 the " +
    "next token is all but fixed; lower means a real choice.",
  grammar_allowed: "How many tokens of the whole vocabulary the grammar allows at this " +
    "step (the server's mask): the bars mark every other token ⊘ forbidden.",
  grammar_removed_mass: "How much probability the grammar took away: the share of the " +
    "distribution it received (after the stages before it) on forbidden tokens.",
  grammar_kl: "KL(constrained ‖ received) = −log(allowed mass): how far the grammar moved the " +
    "distribution it received; 0 when it forbids nothing the model wanted.",
  grammar_top1_illegal: "1 when the likeliest token the grammar received is forbidden (the " +
    "model wanted to leave the grammar here), else 0.",
  grammar_forced: "1 when the grammar allows exactly one token (the next token is forced, " +
    "whatever the sliders say), else 0.",
  "recompute-ms": "How long this page took to recompute the distribution over the whole " +
    "vocabulary after the last change, in this browser (the server is not asked).",
};

function buildReadoutNotes() {
  for (const row of $("readout").querySelectorAll("tr")) {
    const cell = row.querySelector("[data-stat], [data-note], #recompute-ms");
    if (!cell) continue;
    const key = cell.dataset.stat || cell.dataset.note || cell.id;
    const name = row.cells[0].textContent;
    const button = element("button", "explain-toggle", "?");
    button.type = "button";
    button.id = `explain-button-${key}`;
    button.setAttribute("aria-label", `What does “${name}” mean?`);
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-controls", `explain-${key}`);
    const note = element("tr", "explain");
    note.id = `explain-${key}`;
    note.hidden = true;
    const text = element("td", "note", READOUT_NOTES[key]);
    text.colSpan = 3;
    note.append(text);
    button.addEventListener("click", () => {
      note.hidden = !note.hidden;
      button.setAttribute("aria-expanded", String(!note.hidden));
    });
    row.cells[0].append(" ", button);
    row.after(note);
  }
}
