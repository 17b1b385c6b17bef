// The later stages' twins (sampler/engine/filters: xtc, mirostat, top-H in information.py,
// adaptive-p, grammar), in the page's engine: as stages.js, each a function (c, row, context) on a chain
// state (view.js); stages.js adds them to its table of twins.
"use strict";

const SamplerLaterStages = (() => {
  const { f32, INT_MAX, NEG, isSorted, resortBent, kth, peakOf, logNormalizer, entropyOf,
    keepAtLeast, keepAbove } = SamplerView;
  const { keepRanked, xtcRemoved, mirostatV2Count } = SamplerRanked;

  function xtc(c, row, context) {
    const eligible = row.on.xtc_probability && row.values.xtc_threshold <= 0.5;
    if (!eligible) return;
    const coin = context.xtcCoin === undefined ? 0 : context.xtcCoin;
    const fired = coin <= row.values.xtc_probability;
    c.notes.xtc_fired = fired ? 1 : 0;
    c.notes.xtc_removed = 0;
    if (!fired) return;
    if (row.ranked) {  // llama.cpp: float32 p >= t; exactly one reaching token stays
      c.notes.xtc_removed = xtcRemoved(c, row);
      return;
    }
    const bar = f32(logNormalizer(c.x) + Math.log(row.values.xtc_threshold));
    let count = 0, lowest = Infinity, allowed = 0, removed = 0;
    for (const v of c.x) {
      if (v !== NEG) allowed++;
      if (v >= bar) { count++; if (v < lowest) lowest = v; }
    }
    for (const v of c.x) if (v >= bar && v > lowest) removed++;
    if (count >= 2 && allowed - removed >= row.minKeep) {
      for (let i = 0; i < c.x.length; i++) if (c.x[i] > lowest) c.x[i] = NEG;
      c.notes.xtc_removed = removed;
    }
  }

  function mirostatV1K(c, mu) {
    const vocab = c.x.length;
    const size = Math.min(100, vocab);
    if (size - 1 < 1) return 1;
    const logZ = logNormalizer(c.x);
    const probs = new Float32Array(size);
    let n = 0;
    for (const t of c.order) {
      if (n >= size) break;
      if (c.x[t] !== NEG) probs[n++] = Math.exp(c.x[t] - logZ);
    }
    let tb = 0, tt = 0;
    for (let i = 0; i < size - 1; i++) {
      const t = f32(Math.log(f32(f32(i + 2) / f32(i + 1))));
      const b = f32(Math.log(f32(probs[i] / probs[i + 1])));
      tb += f32(t * b);  // numpy's float32 sums are pairwise: nearer a float64 sum than a loop
      tt += f32(t * t);
    }
    const sHat = f32(f32(tb) / f32(tt));
    const eps = f32(sHat - 1);
    let base = f32(eps * f32(2 ** f32(mu)));
    base = f32(base / f32(1 - f32(vocab ** -eps)));
    const k = f32(base ** f32(1 / sHat));
    return Number.isFinite(k) && k < INT_MAX ? Math.max(Math.floor(k), 1) : 1;
  }

  function mirostat(c, row, context) {
    const version = row.values.mirostat;
    if (!version) return;
    const mu = context.mirostatMu === undefined ? 2 * row.values.mirostat_tau : context.mirostatMu;
    c.notes.mirostat_mu = mu;
    if (version === 2 && row.ranked) {
      keepRanked(c, mirostatV2Count(c, mu));
      return;
    }
    if (row.ranked) {  // v1 as llama.cpp's top-k: exactly min(k, size), no min_keep
      c.size = Math.min(mirostatV1K(c, mu), c.size);
      keepRanked(c, c.size);
      return;
    }
    if (version === 2) {
      keepAbove(c, row, Math.min(logNormalizer(c.x) - mu * Math.LN2, peakOf(c)));
      return;
    }
    const k = Math.max(mirostatV1K(c, mu), row.minKeep);
    if (k > 0 && k < c.x.length) keepAtLeast(c, kth(c, k));
  }

  // Top-H (filters/information.py, top_h): over the 100 most likely tokens renormalised, keep
  // them in order while their cumulative entropy stays <= top_h × the head's entropy.
  function topH(c, row) {
    if (!row.on.top_h) return;
    const head = [];
    for (const t of c.order) {
      if (head.length >= 100) break;
      if (c.x[t] !== NEG) head.push(c.x[t]);
    }
    if (head.length === 0) return;
    const { logZ, entropy } = entropyOf(Float64Array.from(head));
    const bound = row.values.top_h * entropy;
    let cumulative = 0, kept = 0;
    for (const v of head) {
      cumulative += -Math.exp(v - logZ) * (v - logZ);
      if (cumulative <= bound) kept++;
    }
    kept = Math.max(kept, 1, Math.min(row.minKeep, head.length));
    keepAtLeast(c, head[kept - 1]);
  }

  // Adaptive-p (filters/adaptive_p.py): logits 5 − 10·d²/(1+d), d = |p − adapted| / 0.3, at
  // the average of chosen probabilities the context gives (the target itself at a first step).
  function adaptiveP(c, row, context) {
    const target = row.values.adaptive_target;
    if (!row.on.adaptive_target || target < 0) return;
    const average = context.adaptiveAverage === undefined ? target : context.adaptiveAverage;
    const adapted = Math.min(Math.max(2 * target - average, 0), 1);
    const peak = peakOf(c);
    let total = 0;
    for (const v of c.x) if (v !== NEG) total += f32(Math.exp(f32(v - peak)));
    for (let i = 0; i < c.x.length; i++) {
      if (c.x[i] === NEG) continue;
      const d = Math.abs(f32(Math.exp(f32(c.x[i] - peak))) / total - adapted) / 0.3;
      c.x[i] = 5 - 10 * d * d / (1 + d);
    }
    c.notes.adaptive_average = average;
    c.notes.adapted_target = adapted;
    // p falls along the old order, so the new logits rise to the target, then fall
    if (!isSorted(c.order, c.x)) c.order = resortBent(c.order, c.x);
  }
  // The constraint (filters/grammar.py). The page cannot run a grammar's matcher itself (it is
  // llguidance, over the model's vocabulary): the server sends the step's mask, the tokens the
  // grammar allows, as context.grammar (token ids), and this twin applies it and reports what
  // the library's stage reports, over the logits it receives.
  function grammar(c, row, context) {
    if (!row.on.grammar) return;
    if (!Array.isArray(context.grammar)) {
      throw new Error("a grammar's mask comes from the server (context.grammar): none was sent");
    }
    const legal = new Uint8Array(c.x.length);
    for (const t of context.grammar) if (t < c.x.length) legal[t] = 1;
    let peak = NEG, top = -1;
    for (let i = 0; i < c.x.length; i++) if (c.x[i] > peak) { peak = c.x[i]; top = i; }
    let total = 0, kept = 0;
    for (let i = 0; i < c.x.length; i++) {
      if (c.x[i] === NEG) continue;
      const w = Math.exp(c.x[i] - peak);
      total += w; if (legal[i]) kept += w;
    }
    c.notes.grammar_allowed = context.grammar.length;
    c.notes.grammar_kl = Math.log(total) - Math.log(kept);
    c.notes.grammar_removed_mass = 1 - kept / total;
    c.notes.grammar_top1_illegal = legal[top] ? 0 : 1;
    c.notes.grammar_forced = context.grammar.length === 1 ? 1 : 0;
    for (let i = 0; i < c.x.length; i++) if (!legal[i]) c.x[i] = NEG;
  }

  return { xtc, mirostat, top_h: topH, adaptive_p: adaptiveP, grammar };
})();
