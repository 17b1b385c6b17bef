// The sorted view of a chain state, shared by the stages (stages.js) and the engine (engine.js).
// A chain state is c = {x: Float32Array logits (-inf dropped), order: the tokens sorted by
// logit, descending, ties by id (dropped tokens may sit anywhere), size: how many entries
// llama.cpp's candidate array would still hold, -inf ones included (Candidates.array_size; only
// the stages of a row whose preset ranks ties, row.ranked, set and read it), notes: what stages
// report}.
//
// Why a sorted order is carried through the chain: the page recomputes on every slider move at
// V = 49,152 within a frame, so nothing may sort the vocabulary per move. The raw logits are
// sorted once per step; temperature and (mostly) smoothing keep that order, and stages that
// move single tokens (bias, penalties, DRY) re-sort only those tokens and merge them back.
"use strict";

const SamplerView = (() => {
  const f32 = Math.fround;
  const F32_EPS = 1.1920928955078125e-7;
  const LOG_SMALLEST_FLOAT64 = Math.log(5e-324);
  const FLOAT_MAX_LOG = 88.7228391;
  const INT_MAX = 2 ** 31 - 1;
  const NEG = -Infinity;

  // --- the sorted view ------------------------------------------------------------------
  function sortedOrder(x) {
    const order = new Uint32Array(x.length);
    for (let i = 0; i < order.length; i++) order[i] = i;
    // descending, ties by id; -inf - -inf is NaN, which || also turns into the id order
    order.sort((a, b) => (x[b] - x[a]) || (a - b));
    return order;
  }

  // Tokens in `touched` moved; put them back in place in `order` (all others kept theirs).
  function remerge(order, x, touched) {
    if (touched.size === 0) return order;
    const moved = Uint32Array.from(touched).sort((a, b) => {
      const d = x[b] - x[a];
      return Number.isNaN(d) || d === 0 ? a - b : d;
    });
    const out = new Uint32Array(order.length);
    let m = 0, o = 0;
    const before = (a, b) => x[a] > x[b] || (x[a] === x[b] && a < b)
      || (x[b] === NEG && x[a] !== NEG);
    for (let i = 0; i < order.length; i++) {
      const t = order[i];
      if (touched.has(t)) continue;
      // a dropped token may sit anywhere in the order: place the moved ones by finite ones
      while (x[t] !== NEG && m < moved.length && before(moved[m], t)) out[o++] = moved[m++];
      out[o++] = t;
    }
    while (m < moved.length) out[o++] = moved[m++];
    return out;
  }

  function isSorted(order, x) {
    let last = Infinity;
    for (let i = 0; i < order.length; i++) {
      const v = x[order[i]];
      if (v === NEG) continue;
      if (v > last) return false;
      last = v;
    }
    return true;
  }

  // After a map that rises then falls along the old order (smoothing with curve > 3, whose
  // cubic term bends the tail back up), the new order is two sorted runs: merged in O(V).
  function resortBent(order, x) {
    const finite = [], dropped = [];
    for (const t of order) (x[t] === NEG ? dropped : finite).push(t);
    let peak = 0;
    for (let i = 1; i < finite.length; i++) if (x[finite[i]] > x[finite[peak]]) peak = i;
    const rising = finite.slice(0, peak + 1).reverse(), falling = finite.slice(peak + 1);
    const descending = (run) => run.every((t, i) => i === 0 || x[run[i - 1]] >= x[t]);
    if (!descending(rising) || !descending(falling)) return sortedOrder(x);
    const out = new Uint32Array(order.length);
    let a = 0, b = 0, o = 0;
    while (a < rising.length || b < falling.length) {
      const takeA = b >= falling.length || (a < rising.length && (x[rising[a]] > x[falling[b]]
        || (x[rising[a]] === x[falling[b]] && rising[a] < falling[b])));
      out[o++] = takeA ? rising[a++] : falling[b++];
    }
    for (const t of dropped) out[o++] = t;
    return out;
  }

  // The k-th largest finite logit (-inf when fewer than k are finite).
  function kth(c, k) {
    let seen = 0;
    for (let i = 0; i < c.order.length; i++) {
      const v = c.x[c.order[i]];
      if (v !== NEG && ++seen === k) return v;
    }
    return NEG;
  }

  function peakOf(c) { return kth(c, 1); }

  function logNormalizer(x) {
    let peak = NEG;
    for (let i = 0; i < x.length; i++) if (x[i] > peak) peak = x[i];
    let total = 0;
    for (let i = 0; i < x.length; i++) if (x[i] !== NEG) total += f32(Math.exp(f32(x[i] - peak)));
    return peak + Math.log(total);
  }

  function entropyOf(x) {
    let peak = NEG;
    for (let i = 0; i < x.length; i++) if (x[i] > peak) peak = x[i];
    let total = 0, weighted = 0;
    for (let i = 0; i < x.length; i++) {
      if (x[i] === NEG) continue;
      const s = x[i] - peak, w = Math.exp(s);
      total += w;
      weighted += w * s;
    }
    return { logZ: peak + Math.log(total), entropy: Math.log(total) - weighted / total, total };
  }

  function keepAtLeast(c, threshold) {
    if (threshold === NEG) return;
    const bar = f32(threshold);
    for (let i = 0; i < c.x.length; i++) if (c.x[i] < bar) c.x[i] = NEG;
  }

  function keepAbove(c, row, floor) {
    if (row.minKeep > 1) floor = Math.min(floor, kth(c, row.minKeep));
    keepAtLeast(c, floor);
  }

  return { f32, F32_EPS, LOG_SMALLEST_FLOAT64, FLOAT_MAX_LOG, INT_MAX, NEG, sortedOrder,
    remerge, isSorted, resortBent, kth, peakOf, logNormalizer, entropyOf, keepAtLeast, keepAbove };
})();
