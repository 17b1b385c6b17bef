// The ranked tie rule of sampler.engine's filters, for the page's engine: rows whose preset
// ranks ties (engine.js, row.ranked: the engine config's `ranked_ties`, presets.RANKED_TIES)
// keep llama.cpp's exact counts at a cut, tokens ranked by logit and then by lowest id, with
// llama.cpp's float32 thresholds. Transcribed from filters/truncation.py (top_ranked,
// keep_ranked, float32_probs, _nucleus_count_float32, _float32_floor), information.py
// (_typical_count), xtc.py and mirostat.py; the stages (stages.js, stages_later.js) call these
// with the rule as the row's flag.
"use strict";

const SamplerRanked = (() => {
  const { f32, NEG, peakOf } = SamplerView;

  // Keep exactly the `count` first finite tokens of the order (logit descending, ties by
  // lowest id): llama.cpp's count, where its unstable sort leaves which tied token unspecified.
  function keepRanked(c, count) {
    let seen = 0;
    for (let i = 0; i < c.order.length; i++) {
      const t = c.order[i];
      if (c.x[t] !== NEG && ++seen > count) c.x[t] = NEG;
    }
  }

  // The softmax in float32, as llama.cpp's: expf(x - max) over their float32 sum (summed in
  // float64 and rounded once: nearer numpy's pairwise float32 sum than a float32 loop).
  function float32Probs(x) {
    let peak = NEG;
    for (let i = 0; i < x.length; i++) if (x[i] > peak) peak = x[i];
    const probs = new Float32Array(x.length);
    let total = 0;
    for (let i = 0; i < x.length; i++) {
      if (x[i] !== NEG) { probs[i] = Math.exp(f32(x[i] - peak)); total += probs[i]; }
    }
    const sum = f32(total);
    for (let i = 0; i < x.length; i++) probs[i] = probs[i] / sum;
    return probs;
  }

  // Top-p: the first i + 1 whose float32 running sum of the sorted probabilities is >= p, at
  // least min_keep; the whole width when the sum never reaches p; at most the array's size.
  function nucleusCount(c, row) {
    const probs = float32Probs(c.x);
    const target = f32(row.values.top_p);
    let running = 0, seen = 0, first = c.x.length;
    for (let i = 0; i < c.order.length; i++) {
      const t = c.order[i];
      if (c.x[t] === NEG) continue;
      seen++;
      running = f32(running + probs[t]);
      if (running >= target) { first = seen; break; }
    }
    return Math.min(Math.max(first, row.minKeep), c.size);
  }

  // Min-p: how many logits reach llama.cpp's float32 floor max + logf(min_p), at least
  // min_keep, at most the array's size; null where min_p rounds to 0 in float32 (off).
  function minPCount(c, row) {
    const minP = f32(row.values.min_p);
    if (!(minP > 0)) return null;
    const floor = f32(peakOf(c) + f32(Math.log(minP)));
    let passing = 0;
    for (let i = 0; i < c.x.length; i++) if (c.x[i] >= floor) passing++;
    return Math.min(Math.max(passing, row.minKeep), c.size);
  }

  // Typical: llama.cpp's cut, in float32, for an array with no -inf entry (the caller checks):
  // H = Σ -p logf p; tokens sorted by |-logf p - H| (ties by lowest id); the first i + 1 whose
  // float32 running mass is strictly above typical_p, at least min_keep. Drops the rest.
  function keepTypical(c, row) {
    const x = c.x;
    const probs = float32Probs(x);
    const logs = new Float32Array(x.length);
    let finite = 0, weighted = 0;
    for (let i = 0; i < x.length; i++) {
      logs[i] = Math.log(probs[i]);
      if (x[i] !== NEG) finite++;
      if (probs[i] > 0) weighted += f32(probs[i] * logs[i]);
    }
    const entropy = f32(-f32(weighted));
    const score = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      score[i] = x[i] === NEG ? Infinity : Math.abs(f32(-logs[i] - entropy));
    }
    const ranking = Array.from(x, (_, i) => i).sort((a, b) => (score[a] - score[b]) || (a - b));
    const mass = f32(row.values.typical_p);
    let running = 0, count = finite;
    for (let i = 0; i < ranking.length; i++) {
      running = f32(running + probs[ranking[i]]);
      if (running > mass) { count = i + 1; break; }
    }
    count = Math.min(Math.max(count, row.minKeep), finite);
    for (let i = count; i < ranking.length; i++) x[ranking[i]] = NEG;
    c.size = count;
  }

  // XTC: the tokens whose float32 probability reaches the threshold (finite ones only); all but
  // the last of them in the ranking are removed, when the array keeps min_keep entries.
  function xtcRemoved(c, row) {
    const probs = float32Probs(c.x);
    const threshold = f32(row.values.xtc_threshold);
    let reaching = 0;
    for (let i = 0; i < c.x.length; i++) if (c.x[i] !== NEG && probs[i] >= threshold) reaching++;
    const removed = Math.max(reaching - 1, 0);
    if (!(reaching >= 2 && c.size - removed >= row.minKeep)) return 0;
    let seen = 0;
    for (let i = 0; i < c.order.length && seen < removed; i++) {
      const t = c.order[i];
      if (c.x[t] !== NEG) { c.x[t] = NEG; seen++; }
    }
    c.size -= removed;
    return removed;
  }

  // Mirostat v2: the prefix with -log2f(p) <= μ (float32), at least one token.
  function mirostatV2Count(c, mu) {
    const probs = float32Probs(c.x);
    const bound = f32(mu);
    let within = 0;
    for (let i = 0; i < c.x.length; i++) {
      if (probs[i] > 0 && f32(-Math.log2(probs[i])) <= bound) within++;
    }
    return Math.max(within, 1);
  }

  return { keepRanked, float32Probs, nucleusCount, minPCount, keepTypical, xtcRemoved,
    mirostatV2Count };
})();
