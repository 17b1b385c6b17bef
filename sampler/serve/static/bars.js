// The bars of the next-token view: per shown token its model probability (τ = 1, top half)
// and its final probability (bottom half). The bars are one Tab stop: ↑ ↓ Home End move among
// them, Enter or Space on one branches there (generate.js) when a generated step is open.
"use strict";

// Tokens shown: the 20 most likely under the model, and the 10 most likely after the chain.
function shownTokens(probs) {
  const shown = new Set(Array.from(view.step.order.subarray(0, 20)));
  if (view.chosen !== null && view.chosen !== undefined) shown.add(view.chosen);
  const best = [];
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0 || (best.length === 10 && probs[i] <= probs[best[9]])) continue;
    best.push(i);
    best.sort((a, b) => probs[b] - probs[a] || a - b);
    if (best.length > 10) best.pop();
  }
  for (const t of best) shown.add(t);
  return [...shown].sort((a, b) => view.step.weights[b] - view.step.weights[a] || a - b);
}

// A bar branches only in an opened step of a generated column (the server's page).
function barsBranch() {
  return DATA.mode === "server" && typeof session !== "undefined" && session.selection !== null;
}

// A token the grammar forbids (grammar.js) is struck through and marked ⊘ (not by colour
// alone), said so to a screen reader, and cannot be branched on.
function barRow(token, base, final, branches, banned) {
  const row = document.createElement("div");
  row.className = "bar-row" + (final === 0 ? " cut" : "") + (token === view.chosen ? " chosen" : "") +
    (banned ? " forbidden" : "");
  branches = branches && !banned;
  row.dataset.token = token;
  row.dataset.final = final;
  row.setAttribute("role", "button");
  row.setAttribute("aria-disabled", String(!branches));
  const shown = visibleText(label(token));
  const name = document.createElement("span");
  name.className = "label";
  name.append(...tokenNodes(label(token)));
  name.title = shown;
  if (banned) {
    const mark = document.createElement("span");
    mark.className = "mark";
    mark.setAttribute("aria-hidden", "true");
    mark.textContent = "⊘";
    name.prepend(mark);
  }
  const track = document.createElement("span");
  track.className = "track";
  track.setAttribute("aria-hidden", "true");
  const baseBar = document.createElement("span");
  baseBar.className = "b-base";
  baseBar.style.width = `${(100 * base).toFixed(2)}%`;
  const finalBar = document.createElement("span");
  finalBar.className = "b-final";
  finalBar.style.width = `${(100 * (final || base)).toFixed(2)}%`;
  track.append(baseBar, finalBar);
  const nums = document.createElement("span");
  nums.className = "nums";
  nums.textContent = `${base.toFixed(4)} → ${final.toFixed(4)}`;
  // the row's accessible name is its text: what the numbers are, and what Enter does
  const said = document.createElement("span");
  said.className = "sr-only";
  said.textContent = ": model p → final p" + (banned ? ", forbidden by the grammar" : "") +
    (final === 0 && !banned ? ", cut" : "") +
    (token === view.chosen ? ", the drawn token" : "") + (branches ? "; Enter branches here" : "");
  row.append(name, track, nums, said);
  return row;
}

function renderBars(result, settings) {
  const box = $("bars");
  const old = [...box.children];
  const focused = old.indexOf(document.activeElement);
  const stop = Math.max(0, focused >= 0 ? focused : old.findIndex((row) => row.tabIndex === 0));
  const branches = barsBranch();
  const rows = shownTokens(result.probs).map((token) => barRow(token,
    view.step.weights[token] / view.step.total, result.probs[token], branches,
    forbidden(token, settings)));
  rows.forEach((row, i) => { row.tabIndex = i === Math.min(stop, rows.length - 1) ? 0 : -1; });
  box.replaceChildren(...rows);
  // a re-render (a slider moved, a step opened) keeps the keyboard's place in the bars
  if (focused >= 0 && rows.length) rows[Math.min(focused, rows.length - 1)].focus();
}

function setupBars() {
  const box = $("bars");
  box.addEventListener("keydown", (event) => {
    const row = event.target.closest(".bar-row");
    if (!row) return;
    const all = [...box.children], at = all.indexOf(row);
    const next = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: all.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    if (next >= 0 && next < all.length) all[next].focus();
  });
  box.addEventListener("focusin", (event) => {
    const row = event.target.closest(".bar-row");
    if (row) for (const other of box.children) other.tabIndex = other === row ? 0 : -1;
  });
}

document.addEventListener("DOMContentLoaded", setupBars);
