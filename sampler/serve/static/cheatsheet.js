// The cheat sheet's picture, as `sampler softmax --plot` draws it (sampler/plots/
// cheatsheet_plot.py), in inline SVG from the same numbers as the table (SamplerEngine.
// cheatSheet): left, each token's probability at each temperature (bars cold to hot); right,
// the entropy against τ on a log axis with its two limits. Its text alternative is the SVG's
// title and description and, on demand, a table of every number drawn.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PICTURE = { width: 760, height: 326, top: 34, bottom: 250, bars: [52, 392], curve: [470, 740] };

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

const px = (value) => Math.round(value * 100) / 100;  // coordinates to 0.01 px

// matplotlib's coolwarm at its two ends and middle, mixed linearly: cold to hot.
function coolwarm(t) {
  const stops = [[59, 76, 192], [221, 221, 221], [180, 4, 38]];
  const [a, b, u] = t <= 0.5 ? [stops[0], stops[1], 2 * t] : [stops[1], stops[2], 2 * t - 1];
  return `rgb(${a.map((v, i) => Math.round(v + (b[i] - v) * u)).join(",")})`;
}

// Token names as the library's cheat sheet gives them: A, B, C... up to 26, else indices.
const tokenNames = (n) => Array.from({ length: n }, (_, i) => (n <= 26 ? String.fromCharCode(65 + i) : String(i)));
const tauName = (tau) => (tau === 0 ? "τ = 0 (hardmax)" : `τ = ${tau}`);

// The entropy curve's τ range, as cheatsheet_plot._entropy_curve_range: a decade or more
// beyond the temperatures drawn, 0.01 to 100 at least.
function curveRange(temperatures) {
  const positive = temperatures.filter((t) => t > 0 && Number.isFinite(t));
  const list = positive.length ? positive : [1];
  return [Math.min(0.01, Math.min(...list) / 2), Math.max(100, Math.max(...list) * 2)];
}

function barPanel(figure, logits, series) {
  const [left, right] = PICTURE.bars, { top, bottom } = PICTURE;
  const height = bottom - top, group = (right - left) / logits.length, width = (0.8 * group) / series.length;
  const names = tokenNames(logits.length);
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    const y = px(bottom - tick * height);
    figure.append(svg("line", { x1: left, x2: right, y1: y, y2: y, stroke: "currentColor", "stroke-opacity": 0.15 }),
      svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "currentColor" }, String(tick)));
  }
  series.forEach(({ tau, sheet, mine }, s) => {
    sheet.probs.forEach((p, i) => {
      const x = left + i * group + 0.1 * group + s * width;
      figure.append(svg("rect", {
        class: "cs-bar", x: px(x), y: px(bottom - p * height), width: px(width), height: px(p * height),
        fill: coolwarm(series.length > 1 ? s / (series.length - 1) : 0),
        stroke: mine ? "currentColor" : "none", "stroke-width": 1.5,
        "data-token": i, "data-tau": tau, "data-p": p,
      }));
    });
  });
  names.forEach((name, i) => figure.append(svg("text", {
    x: px(left + (i + 0.5) * group), y: bottom + 16, "text-anchor": "middle", "font-size": 12, fill: "currentColor",
  }, name)));
  figure.append(svg("text", { x: left, y: top - 14, "font-size": 13, fill: "currentColor" },
    "Probability softmax(x / τ), τ cold → hot"));
}

function curvePanel(figure, logits, series) {
  const [left, right] = PICTURE.curve, { top, bottom } = PICTURE;
  const [low, high] = curveRange(series.map((s) => s.tau));
  const uniform = Math.log(logits.length), hard = SamplerEngine.cheatSheet(logits, 0).entropy_nats;
  const yLow = -0.05 * Math.max(uniform, 1e-3), yHigh = uniform * 1.12 + 1e-3;
  const x = (tau) => left + ((Math.log10(tau) - Math.log10(low)) / (Math.log10(high) - Math.log10(low))) * (right - left);
  const y = (h) => bottom - ((h - yLow) / (yHigh - yLow)) * (bottom - top);
  for (let decade = Math.ceil(Math.log10(low)); decade <= Math.floor(Math.log10(high)); decade++) {
    const at = px(x(10 ** decade));
    figure.append(svg("line", { x1: at, x2: at, y1: top, y2: bottom, stroke: "currentColor", "stroke-opacity": 0.15 }),
      svg("text", { x: at, y: bottom + 16, "text-anchor": "middle", "font-size": 11, fill: "currentColor" }, String(10 ** decade)));
  }
  for (const [h, kind, text] of [[uniform, "cs-uniform", `τ → ∞: uniform, log ${logits.length} = ${uniform.toFixed(3)}`],
    [hard, "cs-hardmax", `τ → 0: hardmax, ${hard.toFixed(3)}`]]) {
    figure.append(svg("line", { class: kind, x1: left, x2: right, y1: px(y(h)), y2: px(y(h)), stroke: "currentColor",
      "stroke-dasharray": kind === "cs-uniform" ? "6 4" : "2 3", "data-entropy": h }),
    svg("text", { x: right, y: px(y(h)) + (kind === "cs-uniform" ? -5 : 13), "text-anchor": "end", "font-size": 11,
      fill: "currentColor" }, text));
  }
  for (const h of [0, uniform]) {
    figure.append(svg("text", { x: left - 6, y: px(y(h)) + 4, "text-anchor": "end", "font-size": 11,
      fill: "currentColor" }, h.toFixed(2)));
  }
  const points = [];
  for (let k = 0; k <= 200; k++) {
    const tau = low * (high / low) ** (k / 200);
    points.push(`${px(x(tau))},${px(y(SamplerEngine.cheatSheet(logits, tau).entropy_nats))}`);
  }
  figure.append(svg("polyline", { class: "cs-curve", points: points.join(" "), fill: "none", stroke: "currentColor", "stroke-width": 1.5 }));
  series.forEach(({ tau, sheet, mine }, s) => {
    if (!(tau > 0 && Number.isFinite(tau))) return;
    figure.append(svg("circle", {
      class: "cs-point", cx: px(x(tau)), cy: px(y(sheet.entropy_nats)), r: mine ? 6 : 4,
      fill: coolwarm(series.length > 1 ? s / (series.length - 1) : 0), stroke: "currentColor",
      "data-tau": tau, "data-entropy": sheet.entropy_nats,
    }));
  });
  figure.append(svg("text", { x: left, y: top - 14, "font-size": 13, fill: "currentColor" },
    "Entropy (nats) against τ, log scale"));
}

// One row of up to seven names, else two rows: each name has room for "τ = 0.667 (yours)".
function legend(figure, series) {
  const columns = series.length <= 7 ? series.length : Math.ceil(series.length / 2), step = (PICTURE.width - 40) / columns;
  series.forEach(({ tau, mine }, s) => {
    const at = 20 + (s % columns) * step, y = 276 + 22 * Math.floor(s / columns);
    figure.append(svg("rect", { x: at, y, width: 12, height: 12, fill: coolwarm(series.length > 1 ? s / (series.length - 1) : 0),
      stroke: mine ? "currentColor" : "none", "stroke-width": 1.5 }),
    svg("text", { x: at + 16, y: y + 10, "font-size": 11, fill: "currentColor" }, tauName(tau) + (mine ? " (yours)" : "")));
  });
}

// The numbers drawn, as a table (the picture's full text alternative).
function numbersTable(logits, series) {
  const table = document.createElement("table");
  table.id = "cs-picture-table";
  const head = document.createElement("tr");
  for (const text of ["τ", ...tokenNames(logits.length).map((n) => `p(${n})`), "entropy (nats)"]) {
    head.append(Object.assign(document.createElement("th"), { textContent: text, scope: "col" }));
  }
  table.append(head);
  for (const { tau, sheet, mine } of series) {
    const row = document.createElement("tr");
    row.append(Object.assign(document.createElement("th"), { textContent: tauName(tau) + (mine ? " (yours)" : ""), scope: "row" }));
    for (const value of [...sheet.probs, sheet.entropy_nats]) {
      row.append(Object.assign(document.createElement("td"), { textContent: value.toFixed(6) }));
    }
    table.append(row);
  }
  return table;
}

function drawCheatSheetPicture(logits, tau) {
  const temperatures = [...DATA.cheat_sheet.temperatures];
  if (!temperatures.includes(tau)) temperatures.push(tau);
  temperatures.sort((a, b) => a - b);
  const series = temperatures.map((t) => ({ tau: t, sheet: SamplerEngine.cheatSheet(logits, t), mine: t === tau }));
  const figure = svg("svg", { id: "cs-svg", viewBox: `0 0 ${PICTURE.width} ${PICTURE.height}`, role: "img",
    "aria-labelledby": "cs-svg-title cs-svg-desc", width: "100%" });
  const mine = series.find((s) => s.mine).sheet;
  const uniform = Math.log(logits.length), hard = series[0].tau === 0 ? series[0].sheet.entropy_nats
    : SamplerEngine.cheatSheet(logits, 0).entropy_nats;
  figure.append(svg("title", { id: "cs-svg-title" }, "Softmax of the logits against temperature τ"),
    svg("desc", { id: "cs-svg-desc" }, `Left: the probability of each of the ${logits.length} tokens at ` +
      `${temperatures.map(tauName).join(", ")}; colder τ puts more on the largest logit, hotter τ evens ` +
      `them out. Right: the entropy rises with τ from ${hard.toFixed(3)} nats (τ → 0, hardmax) toward ` +
      `log ${logits.length} = ${uniform.toFixed(3)} nats (τ → ∞, uniform); at your ${tauName(tau)} it is ` +
      `${mine.entropy_nats.toFixed(3)} nats. The numbers are in the table below the picture.`));
  barPanel(figure, logits, series);
  curvePanel(figure, logits, series);
  legend(figure, series);
  const numbers = document.createElement("details");
  numbers.id = "cs-picture-numbers";
  numbers.append(Object.assign(document.createElement("summary"), { textContent: "The picture's numbers (a table)" }),
    numbersTable(logits, series));
  const open = $("cs-picture-numbers") ? $("cs-picture-numbers").open : false;
  numbers.open = open;
  $("cs-picture").replaceChildren(figure, numbers);
}

// The cheat sheet's τ slider is on a log scale too: a screen reader hears the real τ.
function syncCheatSheetSlider() {
  $("cs-range").setAttribute("aria-valuetext", $("cs-temperature").value || "none");
}
