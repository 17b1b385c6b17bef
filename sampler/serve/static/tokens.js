// Tokens as the page shows them: whitespace made visible (␣ ⏎ →), the bytes of a split
// character as <0xE2> chips (the server names them: sampler/serve/token_labels.py), the drawn
// token's probability as a colour band (its number in the accessible name and the tooltip too,
// so colour is not the only carrier), the alternatives in a tooltip on hover and on keyboard
// focus, and the keys that move through a text's tokens. Model text only ever goes into text
// nodes (textContent), never into markup.
"use strict";

const VISIBLE_WHITESPACE = { " ": "␣", "\n": "⏎", "\t": "→", "\r": "␍" };
// The bands of the legend (page.html's #token-legend): the drawn token's probability under
// the distribution it was drawn from, from "the model was sure" to "a surprise".
const PROBABILITY_BANDS = [[0.5, "p-high"], [0.2, "p-mid"], [0.05, "p-low"], [0, "p-rare"]];

function byteName(ch) {
  return `<0x${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}>`;
}

// A label as one line of text: whitespace visible, other control characters as bytes.
function visibleText(text) {
  if (text === "") return "∅";
  let out = "";
  for (const ch of text) {
    if (ch in VISIBLE_WHITESPACE) out += VISIBLE_WHITESPACE[ch];
    else if (ch < " " || ch === "\x7f") out += byteName(ch);
    else out += ch;
  }
  return out;
}

// A label as nodes for display: text, with whitespace and bytes in styled spans.
function tokenNodes(text) {
  if (text === "") return [Object.assign(document.createElement("span"), { className: "ws", textContent: "∅" })];
  const nodes = [];
  const special = /(?:<0x[0-9A-F]{2}>)+|[ \n\t\r]+|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+/g;
  let last = 0;
  for (const match of text.matchAll(special)) {
    if (match.index > last) nodes.push(document.createTextNode(text.slice(last, match.index)));
    const span = document.createElement("span");
    span.className = /^[ \n\t\r]/.test(match[0]) ? "ws" : "byte";
    span.textContent = visibleText(match[0]);
    nodes.push(span);
    last = match.index + match[0].length;
  }
  if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}

// A generated token's text in running text: a newline still breaks the line (after its ⏎),
// a token of spaces or tabs only shows them, anything else is its text (bytes as chips).
function runningNodes(text) {
  if (/^[ \t]+$/.test(text)) return tokenNodes(text);
  const nodes = [];
  text.split("\n").forEach((part, i) => {
    if (i > 0) {
      const mark = document.createElement("span");
      mark.className = "ws";
      mark.textContent = "⏎";
      nodes.push(mark, document.createTextNode("\n"));
    }
    if (part) nodes.push(...(/<0x[0-9A-F]{2}>/.test(part) ? tokenNodes(part) : [document.createTextNode(part)]));
  });
  return nodes;
}

// What a generated token shows in its text: the text it added, or its label when it added
// none (a token that ends inside a character) or only part of one (shown as �): the bytes.
function shownText(text, label) {
  return text && !text.includes("\ufffd") ? text : label;
}

function probabilityClass(p) {
  if (!(p >= 0)) return "";
  return PROBABILITY_BANDS.find(([low]) => p >= low)[1];
}

// --- the tooltip: one element, shown beside the hovered or focused token -------------------
function showTip(target, nodes) {
  const tip = $("tok-tip");
  tip.replaceChildren(...nodes);
  tip.hidden = false;
  const box = target.getBoundingClientRect();
  const width = document.documentElement.clientWidth;
  const left = Math.max(4, Math.min(box.left, width - tip.offsetWidth - 4));
  tip.style.left = `${window.scrollX + left}px`;
  tip.style.top = `${window.scrollY + box.bottom + 4}px`;
  target.setAttribute("aria-describedby", "tok-tip");
}

function hideTip(target) {
  $("tok-tip").hidden = true;
  if (target) target.removeAttribute("aria-describedby");
}

// The tooltip of a drawn token: its probability, then the most likely tokens of its step.
function alternativesTip(title, p, top, drawn) {
  const head = document.createElement("div");
  head.textContent = `${title} · p ${fmt(p, 4)}`;
  const nodes = [head];
  if (top && top.length) {
    const table = document.createElement("table");
    const header = document.createElement("tr");
    for (const name of ["alternatives", "final p", "model p"]) {
      const th = document.createElement("th");
      th.textContent = name;
      header.append(th);
    }
    table.append(header);
    for (const item of top) {
      const tr = document.createElement("tr");
      const name = document.createElement("td");
      name.append(...tokenNodes(item.label));
      if (item.token === drawn) name.append(" (drawn)");
      for (const cell of [name, fmt(item.final_p, 4), fmt(item.base_p, 4)]) {
        const td = cell instanceof Node ? cell : Object.assign(document.createElement("td"), { textContent: cell });
        tr.append(td);
      }
      table.append(tr);
    }
    nodes.push(table);
  }
  const hint = document.createElement("div");
  hint.className = "note";
  hint.textContent = "Enter or click: open this step";
  nodes.push(hint);
  return nodes;
}

// --- a text of tokens: one Tab stop --------------------------------------------------------
// ← → Home End move among the tokens of `box`; Enter or Space opens the focused one
// (open(index)); once one of them is open, moving opens the next (as ← → did before).
// describe(index) gives the tooltip's nodes, or null for none.
function tokenList(box, open, describe) {
  const tokens = () => [...box.querySelectorAll(".tok[data-step]")];
  box.addEventListener("keydown", (event) => {
    const tok = event.target.closest(".tok[data-step]");
    if (!tok) return;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      event.stopPropagation();
      open(Number(tok.dataset.step));
      return;
    }
    if (event.key === "Escape") { hideTip(tok); return; }
    const all = tokens(), at = all.indexOf(tok);
    const next = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: all.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    event.stopPropagation();  // not also steps.js's ← →
    if (next < 0 || next >= all.length) return;
    all[next].focus();
    if (tok.classList.contains("selected")) open(Number(all[next].dataset.step));
  });
  const tipFor = (tok) => {
    const nodes = describe(Number(tok.dataset.step));
    if (nodes) showTip(tok, nodes);
  };
  box.addEventListener("focusin", (event) => {
    const tok = event.target.closest(".tok[data-step]");
    if (!tok) return;
    for (const other of tokens()) other.tabIndex = other === tok ? 0 : -1;
    tipFor(tok);
  });
  box.addEventListener("focusout", (event) => hideTip(event.target));
  box.addEventListener("mouseover", (event) => {
    const tok = event.target.closest(".tok[data-step]");
    if (tok) tipFor(tok);
  });
  box.addEventListener("mouseout", (event) => {
    const tok = event.target.closest(".tok[data-step]");
    if (tok && tok !== document.activeElement) hideTip(tok);
  });
}

// A token span of a text: focusable (the text's first token is its Tab stop), a button.
function tokenSpan(box, step, label) {
  const span = document.createElement("span");
  span.className = "tok";
  span.dataset.step = step;
  span.setAttribute("role", "button");
  span.tabIndex = box.querySelector(".tok[tabindex='0']") ? -1 : 0;
  span.setAttribute("aria-label", label);
  return span;
}
