// The stages of sampler.engine's chain (sampler/engine/filters), transcribed for the page: each a
// function (c, row, context) on a chain state (view.js). A Float32Array rounds every stored
// value as numpy's float32 arithmetic does; sums are float64. engine.js runs them in order.
// XTC, mirostat, top-H and adaptive-p are in stages_later.js, loaded first. A row whose preset
// ranks ties (row.ranked) cuts at llama.cpp's exact counts (ranked.js), as in the library.
"use strict";

const SamplerStages = (() => {
  const { f32, F32_EPS, FLOAT_MAX_LOG, NEG, remerge, isSorted, resortBent, kth, peakOf,
    logNormalizer, entropyOf, keepAtLeast, keepAbove } = SamplerView;
  const { keepRanked, nucleusCount, minPCount, keepTypical } = SamplerRanked;

  // --- stages (sampler/engine/filters) -------------------------------------------------
  function logitBias(c, row) {
    const touched = new Set();
    for (const [token, bias] of Object.entries(row.values.logit_bias || {})) {
      const t = Number(token);
      if (t < c.x.length) { c.x[t] = c.x[t] + f32(bias); touched.add(t); }
    }
    c.order = remerge(c.order, c.x, touched);
  }

  function penalties(c, row, context) {
    let history = context.history || [];
    const lastN = row.values.penalty_last_n;
    if (lastN > 0) history = history.slice(-lastN);
    const counts = new Map();
    for (const t of history) counts.set(t, (counts.get(t) || 0) + 1);
    const penalty = f32(row.values.repetition_penalty);
    for (const [t, count] of counts) {
      if (t >= c.x.length) continue;
      const v = c.x[t];
      const shifted = f32(v < 0 ? v * penalty : v / penalty);
      const shift = count * row.values.frequency_penalty + row.values.presence_penalty;
      c.x[t] = shifted - f32(shift);
    }
    c.order = remerge(c.order, c.x, new Set(counts.keys()));
  }

  // DRY: the repeats come from the server (they need the vocabulary's texts); the penalty
  // from them is llama.cpp's, in its float32 steps (filters/dry.py, dry_penalties).
  function dryPenalties(row, repeats) {
    const v = row.values;
    const out = new Map();
    if (!repeats || v.dry_multiplier === 0 || v.dry_base < 1) return { out, match: 0 };
    const allowed = v.dry_allowed_length;
    if (repeats.window <= allowed || repeats.limit < allowed) return { out, match: 0 };
    const base32 = f32(v.dry_base);
    const cap = base32 > 1.000001 ? Math.trunc(f32(f32(FLOAT_MAX_LOG) / f32(Math.log(base32)))) : 0;
    let match = 0;
    for (const [token, length] of Object.entries(repeats.longest)) {
      if (length < allowed) continue;
      match = Math.max(match, length);
      if (repeats.exempt.includes(Number(token))) continue;
      let exponent = length - allowed;
      if (cap > 0 && exponent > cap) exponent = cap;
      out.set(Number(token), f32(f32(v.dry_multiplier) * base32 ** exponent));
    }
    return { out, match };
  }

  function dry(c, row, context) {
    if (!(row.on.dry_multiplier && row.values.dry_penalty_last_n !== 0)) return;
    const { out, match } = dryPenalties(row, context.dry);
    let largest = 0;
    for (const [t, penalty] of out) {
      if (t < c.x.length) c.x[t] = c.x[t] - f32(penalty);
      largest = Math.max(largest, penalty);
    }
    c.notes.dry_match = match;
    c.notes.dry_penalty = largest;
    c.order = remerge(c.order, c.x, new Set(out.keys()));
  }

  // N is the count of finite logits, or llama.cpp's array size where the row ranks ties.
  function dynamicTemperature(x, tau, spread, exponent, size = null) {
    let allowed = 0;
    for (let i = 0; i < x.length; i++) if (x[i] !== NEG) allowed++;
    if (size !== null) allowed = size;
    if (allowed <= 1) return tau;
    const ratio = Math.min(Math.max(entropyOf(x).entropy / Math.log(allowed), 0), 1);
    const low = Math.max(0, tau - spread), high = tau + spread;
    return low + (high - low) * ratio ** exponent;
  }

  function temperature(c, row) {
    if (!row.on.temperature) return;
    const peak = peakOf(c);
    for (let i = 0; i < c.x.length; i++) c.x[i] = c.x[i] - peak;
    let tau = row.values.temperature;
    if (row.on.dynatemp_range && tau > 0) {
      tau = dynamicTemperature(c.x, tau, row.values.dynatemp_range, row.values.dynatemp_exponent,
        row.ranked ? c.size : null);
      c.notes.temperature_chosen = tau;
    }
    const divisor = f32(tau);
    for (let i = 0; i < c.x.length; i++) {
      const s = c.x[i];
      if (divisor === 0) c.x[i] = s === 0 ? 0 : NEG;
      else if (divisor === Infinity) c.x[i] = s === NEG ? NEG : 0;
      else c.x[i] = s / divisor;
    }
  }

  function smoothing(c, row) {
    if (!row.on.smoothing) return;
    const factor = row.values.smoothing_factor, curve = row.values.smoothing_curve;
    const peak = peakOf(c);
    const k = (3 - curve) / 2, s = (curve - 1) / 2;
    for (let i = 0; i < c.x.length; i++) {
      if (c.x[i] === NEG) continue;
      const d = c.x[i] - peak;
      c.x[i] = -k * factor * d * d + s * factor * d * d * d + peak;
    }
    if (!isSorted(c.order, c.x)) c.order = resortBent(c.order, c.x);  // curve > 3
  }

  function topK(c, row) {
    if (row.ranked) {  // llama.cpp: exactly min(k, size), no min_keep
      if (!row.on.top_k) return;
      c.size = Math.min(row.values.top_k, c.size);
      keepRanked(c, c.size);
      return;
    }
    const k = Math.max(row.values.top_k, row.minKeep);
    if (!(row.on.top_k && k > 0 && k < c.x.length)) return;
    keepAtLeast(c, kth(c, k));
  }

  function topP(c, row) {
    if (!row.on.top_p) return;
    if (row.ranked) {
      c.size = nucleusCount(c, row);
      keepRanked(c, c.size);
      return;
    }
    const logZ = logNormalizer(c.x);
    const reached = row.values.top_p - 8 * F32_EPS;
    let above = 0, kept = 0, last = NEG, count = 0;
    for (let i = 0; i < c.order.length; i++) {
      const v = c.x[c.order[i]];
      if (v === NEG) continue;
      count++;
      if (above < reached) { kept = count; last = v; }
      above += Math.exp(v - logZ);
    }
    if (kept < row.minKeep) last = kth(c, row.minKeep);
    keepAtLeast(c, last);
  }

  function minP(c, row) {
    if (!row.on.min_p) return;
    if (row.ranked) {
      const count = minPCount(c, row);
      if (count !== null) { c.size = count; keepRanked(c, count); }
      return;
    }
    keepAbove(c, row, peakOf(c) + Math.log(row.values.min_p));
  }

  function topA(c, row) {
    if (!row.on.top_a) return;
    keepAbove(c, row, Math.log(row.values.top_a) + 2 * peakOf(c) - logNormalizer(c.x));
  }

  function topNSigma(c, row) {
    if (!row.on.top_n_sigma) return;
    let count = 0, sum = 0, peak = NEG;
    for (const v of c.x) if (v !== NEG) { count++; sum += v; if (v > peak) peak = v; }
    if (count <= 1) return;
    const mean = sum / count;
    let squares = 0;
    for (const v of c.x) if (v !== NEG) squares += (v - mean) ** 2;
    keepAtLeast(c, peak - row.values.top_n_sigma * Math.sqrt(squares / count));
  }

  function protectedFloor(c, row) { return row.minKeep <= 1 ? peakOf(c) : kth(c, row.minKeep); }

  function epsilon(c, row) {
    if (!row.on.epsilon) return;
    const floor = entropyOf(c.x).logZ + Math.log(row.values.epsilon);
    keepAtLeast(c, Math.min(floor, protectedFloor(c, row)));
  }

  function eta(c, row) {
    if (!row.on.eta) return;
    const { logZ, entropy } = entropyOf(c.x);
    const value = row.values.eta;
    const floor = logZ + Math.log(Math.min(value, Math.sqrt(value) * Math.exp(-entropy)));
    keepAtLeast(c, Math.min(floor, protectedFloor(c, row)));
  }

  // Typical: ranked by |−log p − H|, a band around log p = −H in the sorted order, so the
  // ranking is a merge walking outward from where log p crosses −H.
  function typicalP(c, row) {
    if (!row.on.typical_p) return;
    // llama.cpp's rule holds where its array has no -inf entry (information.py, typical_p)
    if (row.ranked && c.x.reduce((n, v) => n + (v !== NEG), 0) === c.size) {
      keepTypical(c, row);
      return;
    }
    const { logZ, entropy } = entropyOf(c.x);
    const h = f32(entropy);
    const finite = [];
    for (const t of c.order) if (c.x[t] !== NEG) finite.push(t);
    const score = (t) => Math.abs(-(c.x[t] - logZ) - h);
    let right = finite.findIndex((t) => -(c.x[t] - logZ) >= h);
    if (right < 0) right = finite.length;
    let left = right - 1, cumulative = 0, position = 0, limit = Infinity;
    const width = c.x.length;
    const wanted = Math.max(row.minKeep, 1) - 1;
    while (left >= 0 || right < finite.length) {
      const takeLeft = right >= finite.length
        || (left >= 0 && score(finite[left]) <= score(finite[right]));
      const t = takeLeft ? finite[left--] : finite[right++];
      limit = score(t);
      cumulative += Math.exp(c.x[t] - logZ);
      if ((cumulative >= row.values.typical_p && position >= wanted) || position >= width - 1) {
        break;
      }
      position++;
    }
    for (let i = 0; i < c.x.length; i++) if (c.x[i] !== NEG && score(i) > limit) c.x[i] = NEG;
  }

  function tfs(c, row) {
    if (!row.on.tfs) return;
    const logZ = logNormalizer(c.x);
    const probs = [];
    for (const t of c.order) if (c.x[t] !== NEG) probs.push(Math.exp(c.x[t] - logZ));
    const width = c.x.length;
    while (probs.length < width) probs.push(0);
    const d2 = new Float64Array(Math.max(width - 2, 0));
    let total = 0;
    for (let j = 0; j < d2.length; j++) {
      d2[j] = Math.abs(probs[j + 2] - 2 * probs[j + 1] + probs[j]);
      total += d2[j];
    }
    let kept;
    if (total > 0) {
      let running = 0;
      kept = 1;
      for (let j = 0; j < Math.min(d2.length, width - 1); j++) {
        running += d2[j];
        if (running / total <= row.values.tfs) kept++;
      }
      kept = Math.min(kept, width - 1);
    } else {
      kept = width;
    }
    kept = Math.max(kept, Math.min(row.minKeep, width), 1);
    keepAtLeast(c, kth(c, kept));
  }

  // Each stage's twin, by the name of its row in the stage table (sampler/engine/stages.py):
  // the engine refuses a chain with a stage that has none, and tests/test_page_engine.py runs
  // every row of the table here against the library.
  const STAGE_FUNCTIONS = {
    logit_bias: logitBias, penalties, dry, temperature, smoothing, top_k: topK, top_p: topP,
    min_p: minP, top_a: topA, top_n_sigma: topNSigma, epsilon, eta, typical_p: typicalP, tfs,
    ...SamplerLaterStages,
  };

  return { STAGE_FUNCTIONS, dryPenalties };
})();

