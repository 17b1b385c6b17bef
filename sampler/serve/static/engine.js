// The sampling chain of sampler.engine for the page: settings as SamplingParams reads them, a
// step's prepared row, the chain run in a preset's order (stages.js), the final distribution
// and its StepStats. What it knows of the stage table (stages, settings, presets) is the
// table's JSON (sampler/serve/page.py, engine_config), given to configure().
// tests/test_page_engine.py checks it against sampler.distribution and StepStats in Chromium.
"use strict";

const SamplerEngine = (() => {
  const { STAGE_FUNCTIONS, dryPenalties } = SamplerStages;
  const { sortedOrder, peakOf, entropyOf, f32, LOG_SMALLEST_FLOAT64, NEG } = SamplerView;
  let config = null;
  let shaping = [];  // the stages before temperature that reshape without cutting
  let settingOf = {};

  // --- settings -------------------------------------------------------------------------
  function configure(value) {
    config = value;
    // as sampler/engine/chain.py: shaping stages but the required one (temperature)
    shaping = config.stages.filter((s) => s.shaping && !s.required).map((s) => s.name);
    settingOf = Object.fromEntries([...config.settings, ...config.row_settings]
      .map((s) => [s.name, s]));
  }

  // The table's stages with no twin here, and twins of no stage of the table (both empty when
  // the page's engine and the library's are paired).
  function unpaired() {
    const names = config.stages.map((s) => s.name);
    return { missing: names.filter((n) => !Object.hasOwn(STAGE_FUNCTIONS, n)),
      extra: Object.keys(STAGE_FUNCTIONS).filter((n) => !names.includes(n)) };
  }

  function isOff(setting, value) {
    if (Array.isArray(setting.off)) return JSON.stringify(value) === JSON.stringify(setting.off);
    if (setting.kind === "dict") return Object.keys(value || {}).length === 0;
    return value === setting.off || (setting.off_values || []).includes(value);
  }

  // A row as the filters read it (RowParams for one row): every setting, which are on.
  function rowOf(given) {
    const values = {};
    for (const s of config.settings) values[s.name] = s.name in given ? given[s.name] : s.off;
    const mode = given.mode || "sample";
    const greedy = mode === "greedy" || (mode === "sample" && values.temperature === 0);
    const hardmax = mode === "hardmax";
    const on = {};
    for (const s of config.settings) on[s.name] = !isOff(s, values[s.name]);
    if (greedy || hardmax) values.temperature = 0;
    on.temperature = values.temperature !== 1;
    for (const stage of config.stages) {
      on[stage.name] = stage.activating.some((name) => name === "temperature"
        ? values.temperature !== 1 : on[name]);
    }
    const order = Array.isArray(given.order) ? given.order
      : config.presets[given.order || config.default_order];
    // as SamplingParams.stages: mirostat replaces the truncation stages; adaptive-p runs last
    const stages = values.mirostat
      ? [...order.filter((n) => config.mirostat_chain.includes(n)), "mirostat"]
      : [...order.filter((n) => n !== "mirostat" && n !== "adaptive_p"),
        ...(order.includes("adaptive_p") ? ["adaptive_p"] : [])];
    // as presets.ranks_ties: a preset whose cuts keep llama.cpp's exact counts (or its list)
    const ranked = config.ranked_ties.some((name) => sameList(order, config.presets[name]));
    // as SamplingParams.resamples: grammar_mode "auto" resamples under llama.cpp's preset
    const resamples = on.grammar && (values.grammar_mode === "resample"
      || (values.grammar_mode === "auto"
        && config.resampling.some((name) => sameList(order, config.presets[name]))));
    return { values, on, greedy, hardmax, minKeep: given.min_tokens_to_keep || 1, stages,
      ranked, resamples };
  }

  function sameList(a, b) {
    return a.length === b.length && a.every((v, i) => v === b[i]);
  }

  // --- a step ---------------------------------------------------------------------------
  // What a step's raw logits give once: their sorted order and the base softmax.
  function prepare(raw) {
    const x = raw instanceof Float32Array ? raw : Float32Array.from(raw);
    const order = sortedOrder(x);
    const peak = x[order[0]];
    const weights = new Float64Array(x.length);
    let total = 0, weighted = 0;
    for (let i = 0; i < x.length; i++) {
      const s = x[i] - peak;
      const w = s === NEG ? 0 : Math.exp(s);
      weights[i] = w; total += w; if (w) weighted += w * s;
    }
    return { raw: x, order, peak, weights, total, entropy: Math.log(total) - weighted / total,
      buffers: {} };
  }

  // Work arrays reused from one evaluation of a step to the next: a slider move then makes no
  // vocabulary-sized garbage, whose collection once cost a frame. An evaluation's arrays are
  // valid until the next evaluation of the same step.
  function buffer(step, name) {
    if (!step.buffers[name]) step.buffers[name] = new Float32Array(step.raw.length);
    return step.buffers[name];
  }

  function runChain(step, row, context, names, slot) {
    const x = buffer(step, `x-${slot}`);
    x.set(step.raw);
    const c = { x, order: step.order, size: x.length, notes: {} };
    for (const name of names) {
      if (!Object.hasOwn(STAGE_FUNCTIONS, name)) {
        throw new Error(`the page's engine has no twin of stage ${name} (sampler/serve/static/stages.js)`);
      }
      STAGE_FUNCTIONS[name](c, row, context);
    }
    return c;
  }

  // The final distribution of one chain run (FinalDistribution): probabilities as float32.
  function finalOf(step, c, row, slot) {
    const x = c.x;
    const peak = peakOf(c);
    const frozen = row.greedy || row.hardmax;
    const weights = buffer(step, `w-${slot}`).fill(0);
    let total = 0;
    for (let i = 0; i < x.length; i++) {
      if (x[i] === NEG || (frozen && x[i] < peak)) continue;
      weights[i] = Math.exp(f32(x[i] - peak));
      total += weights[i];
    }
    const probs = buffer(step, `p-${slot}`).fill(0);
    if (row.greedy) {
      let first = 0;
      for (let i = 0; i < x.length; i++) if (weights[i] > weights[first]) first = i;
      probs[first] = 1;
      return { probs, weights, total, peak, first };
    }
    for (let i = 0; i < x.length; i++) probs[i] = weights[i] / total;
    return { probs, weights, total, peak, first: -1 };
  }

  // sampler.distribution for one row, with its step statistics (StepStats without the draw).
  function evaluate(step, given, context = {}) {
    const started = performance.now();
    const row = rowOf(given);
    const xtcChance = row.on.xtc_probability && row.values.xtc_threshold <= 0.5
      && row.stages.includes("xtc") ? row.values.xtc_probability : 0;
    const held = context.xtcCoin === undefined && xtcChance > 0
      ? { ...context, xtcCoin: 1 } : context;
    const chain = runChain(step, row, held, row.stages, "held");
    const final = finalOf(step, chain, row, "held");
    let probs = final.probs;
    if (xtcChance > 0 && context.xtcCoin === undefined) {
      const firedChain = runChain(step, row, { ...context, xtcCoin: 0 }, row.stages, "fired");
      const fired = finalOf(step, firedChain, row, "fired").probs;
      const mixed = buffer(step, "mixed");
      for (let i = 0; i < mixed.length; i++) {
        mixed[i] = xtcChance * fired[i] + (1 - xtcChance) * probs[i];
      }
      probs = mixed;
    }
    const shaped = row.stages.filter((n) => shaping.includes(n));
    const tempered = runChain(step, row, context, [...shaped, "temperature"], "tempered").x;
    const result = { probs, stats: statsOf(step, chain, final, row, tempered),
      notes: chain.notes, kept: final.weights, xtcChance };
    if (row.resamples) Object.assign(result, resampled(step, given, context, probs, tempered));
    result.ms = performance.now() - started;
    return result;
  }

  // llama.cpp's grammar resampling (sampler/engine/resample.py): the row draws from its chain
  // without the mask (law q) and, only when that token is illegal, again from its chain with
  // the mask (law r, ``second``): P = q·[legal] + (Σ_illegal q)·r. Its probabilities, kept
  // tokens and statistics are P's.
  function resampled(step, given, context, second, tempered) {
    const r = buffer(step, "resample-r");
    r.set(second);  // evaluating q reuses the buffers r is in
    const q = evaluate(step, { ...given, grammar: "" }, context).probs;
    const legal = new Uint8Array(q.length);
    for (const t of context.grammar) if (t < q.length) legal[t] = 1;
    let rejected = 0;
    for (let i = 0; i < q.length; i++) if (!legal[i]) rejected += q[i];
    const probs = buffer(step, "resample-p"), x = buffer(step, "resample-x");
    for (let i = 0; i < q.length; i++) {
      probs[i] = (legal[i] ? q[i] : 0) + rejected * r[i];
      x[i] = probs[i] > 0 ? Math.log(probs[i]) : NEG;
    }
    const row = rowOf(given);
    const mixture = { x, order: sortedOrder(x), size: x.length, notes: {} };
    const final = finalOf(step, mixture, row, "resample");
    return { probs, kept: final.weights, stats: statsOf(step, mixture, final, row, tempered) };
  }

  function statsOf(step, chain, final, row, tempered) {
    const x = chain.x;
    const baseLogTotal = Math.log(step.total);
    const floor = f32(LOG_SMALLEST_FLOAT64 + Math.log(final.total));
    const frozen = row.greedy || row.hardmax;
    let weighted = 0, cross = 0, support = 0, keptBase = 0;
    for (let i = 0; i < x.length; i++) {
      if (x[i] === NEG || (frozen && x[i] < final.peak)) continue;
      const w = final.weights[i];
      const s = f32(x[i] - final.peak);
      if (w) { weighted += w * s; cross += w * (step.raw[i] - step.peak); }
      // in the support even where the float32 weight underflowed (FinalDistribution.support)
      if (s >= floor) { support++; keptBase += step.weights[i]; }
    }
    const temperedEntropy = entropyOf(tempered).entropy;
    const entropyTemp = Number.isFinite(temperedEntropy) ? temperedEntropy : 0;
    if (row.greedy) {
      const chosenBase = (step.raw[final.first] - step.peak) - baseLogTotal;
      return { entropy_base: step.entropy, entropy_temp: entropyTemp, entropy_final: 0,
        top1_prob: 1, kept_tokens: 1, kept_mass: Math.exp(chosenBase),
        kl_final_base: -chosenBase, base_argmax: step.order[0] };
    }
    const entropyFinal = Math.log(final.total) - weighted / final.total;
    return {
      entropy_base: step.entropy,
      entropy_temp: entropyTemp,
      entropy_final: entropyFinal,
      top1_prob: 1 / final.total,
      kept_tokens: support,
      kept_mass: Math.min(keptBase / step.total, 1),
      kl_final_base: Math.max(-entropyFinal - (cross / final.total - baseLogTotal), 0),
      base_argmax: step.order[0],
    };
  }

  // The cheat sheet's numbers (sampler.cheatsheet) for logits at one temperature, float64.
  function cheatSheet(logits, tau) {
    const peak = Math.max(...logits);
    const maxima = logits.map((v) => (v === peak ? 1 : 0));
    const ties = maxima.reduce((a, b) => a + b, 0);
    const hard = maxima.map((m) => m / ties);
    let probs;
    if (tau === 0) probs = hard;
    else {
      const w = logits.map((v) => Math.exp((v - peak) / tau));
      const total = w.reduce((a, b) => a + b, 0);
      probs = w.map((v) => v / total);
    }
    const entropy = -probs.reduce((a, p) => a + (p > 0 ? p * Math.log(p) : 0), 0);
    return { probs, hardmax: hard, argmax: logits.indexOf(peak),
      argmin: logits.indexOf(Math.min(...logits)), entropy_nats: entropy,
      entropy_bits: entropy / Math.LN2 };
  }

  // The library's check of one number setting (Setting.check): its message, or null.
  function problem(name, value) {
    const setting = settingOf[name];
    const [low, high, lowOpen, highOpen] = setting.bounds || [null, null, false, false];
    const fits = !Number.isNaN(value)
      && (setting.kind !== "int" || Number.isInteger(value))
      && (low === null || (lowOpen ? value > low : value >= low))
      && (high === null ? !(highOpen && value === Infinity)
        : (highOpen ? value < high : value <= high));
    return fits ? null : `${name}=${value} is out of range: allowed ${setting.allowed}`;
  }

  return { configure, unpaired, prepare, evaluate, rowOf, cheatSheet, dryPenalties, problem };
})();

if (typeof module !== "undefined") module.exports = SamplerEngine;