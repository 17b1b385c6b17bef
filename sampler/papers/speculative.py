"""Speculative decoding's acceptance against temperature and truncation, exact and measured.

Draft: the experiment's model (by default SmolLM2-135M-Instruct's Q4_1 GGUF on llama.cpp);
target: its float32 torch twin (:data:`TARGET_OF`; the same tokenizer, the Q4_1 weights
dequantised, so the two differ by quantisation of the activations and kernel rounding), and,
on the target alone, one sampler chain drafting for another. Three measurements:

1. the exact acceptance ``Σ min(p, q)`` at every position of texts the draft generated (a
   logged run), per temperature and truncation (:mod:`sampler.papers.speculative_acceptance`);
2. an actual speculative sampler (:mod:`sampler.analysis.speculative`, ``k`` drafts a round)
   from every prompt: its acceptance rate against the exact acceptance at the very contexts
   it judged;
3. its output law: the first two tokens of many independent runs from one prompt against
   the target's exact joint law, Pearson's chi-square at a 1 % false-alarm rate.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sampler.analysis.speculative import (
    SpeculativeRun,
    acceptance_z,
    context_logits,
    source_law,
    speculative_generate,
)
from sampler.analysis.speculative_checks import output_law_test
from sampler.engine.params import SamplingParams
from sampler.papers.generations import logged_run, prompts_for
from sampler.papers.intervals import ratio_estimate
from sampler.papers.records import (
    Estimate,
    Experiment,
    Finding,
    Options,
    Outcome,
    Reference,
    Table,
    verdict_within,
)
from sampler.papers.speculative_acceptance import Pair, acceptance_along
from sampler.papers.speculative_report import acceptance_figure, acceptance_table
from sampler.papers.texts import Document
from sampler.sources.base import LogitSource

__all__ = ["EXPERIMENT", "TARGET_OF", "make_pairs", "sampler_findings"]

TARGET_OF = {"smollm2-135m-gguf": "smollm2-135m"}
TEMPERATURES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
TRUNCATIONS: dict[str, dict[str, Any]] = {
    "no truncation": {},
    "top-p 0.9": {"top_p": 0.9},
    "top-k 20": {"top_k": 20},
    "min-p 0.1": {"min_p": 0.1},
}
LLAMA_DEFAULTS = {"top_k": 40, "top_p": 0.95, "min_p": 0.05}  # llama.cpp's default chain
CHAIN_PAIR = (
    "one model: llama.cpp chain drafts for transformers chain (top-k 40, top-p 0.95, min-p 0.05)"
)
TEXT_TOKENS, SAMPLER_TOKENS, K = 48, 32, 4
BAND = 0.05  # measured minus exact acceptance: "equal" means within this (stated before the run)
FALSE_ALARM = 0.01


def _settings(order: str = "hf", **settings: Any):
    return lambda t: SamplingParams(temperature=t, order=order, **settings)


def make_pairs(draft: LogitSource, target: LogitSource) -> list[Pair]:
    """The pairs measured: the two backends under each truncation, then two on the target."""
    pairs = [
        Pair(f"two backends, {name}", draft, target, _settings(**settings))
        for name, settings in TRUNCATIONS.items()
    ]
    pairs.append(
        Pair(
            CHAIN_PAIR,
            target,
            target,
            _settings("llama.cpp", **LLAMA_DEFAULTS),
            _settings(**LLAMA_DEFAULTS),
        )
    )
    pairs.append(
        Pair(
            "one model: top-k 20 drafts for no truncation",
            target,
            target,
            _settings(top_k=20),
            _settings(),
        )
    )
    return pairs


def _documents(source: LogitSource, prompts: list[str], rows: list[dict]) -> list[Document]:
    return [
        Document(prompt[:40], source.encode(prompt, source.is_chat), list(row["token_ids"]))
        for prompt, row in zip(prompts, rows, strict=True)
        if row["token_ids"]
    ]


def sampler_findings(
    runs: dict[str, list[SpeculativeRun]], rng: np.random.Generator
) -> tuple[list[Finding], Table]:
    """Per configuration, measured minus exact acceptance over prompts (clusters), and a
    table with the z-test and tokens per round."""
    findings, rows = [], []
    for name, per_prompt in runs.items():
        checked = np.array([r.checked for r in per_prompt], np.float64)
        gap = np.array([r.accepted - r.expected for r in per_prompt])
        estimate = ratio_estimate(gap, checked, rng)
        findings.append(
            Finding(
                f"{name}: measured minus exact acceptance rate (the claim predicts 0; equal "
                f"means within ± {BAND:g})",
                estimate,
                verdict_within(estimate, -BAND, BAND),
            )
        )
        total = SpeculativeRun()
        for run in per_prompt:
            total.add(run)
        z = acceptance_z(total)
        rows.append(
            (
                name,
                str(total.checked),
                f"{total.accepted / total.checked:.4f}",
                f"{total.expected / total.checked:.4f}",
                f"{z:+.2f}",
                f"{math.erfc(abs(z) / math.sqrt(2)):.3f}",
                f"{len(total.tokens) / total.rounds:.2f}",
            )
        )
    header = (
        "configuration",
        "drafts judged",
        "accepted",
        "exact Σ min(p, q)",
        "z",
        "p (two-sided)",
        "tokens per target pass",
    )
    note = (
        f"k = {K} drafts a round. z = (accepted − Σ α) / √Σ α(1 − α) over the judged "
        "drafts, α the exact acceptance at each one's context."
    )
    return findings, Table("The speculative sampler's acceptance", header, tuple(rows), note)


def run(options: Options, source: LogitSource) -> Outcome:
    from sampler.sources import load_source

    name = TARGET_OF.get(source.name)
    target = (
        source
        if name is None
        else load_source(name, cache_dir=options.cache_dir, progress=options.progress, quiet=True)
    )
    prompts = prompts_for(options.scale)
    run_id, rows = logged_run(options, source, prompts, (1.0,), 1, TEXT_TOKENS)
    pairs = make_pairs(source, target)
    documents = [(source, _documents(source, prompts, rows))]
    if target is not source:
        documents.append((target, _documents(target, prompts, rows)))
    encodings = [[d.context for d in docs] for _, docs in documents]
    same_context = all(contexts == encodings[0] for contexts in encodings)
    options.progress(f"exact acceptance along {len(prompts)} texts of {TEXT_TOKENS} tokens")
    exact = acceptance_along(pairs, TEMPERATURES, documents)
    rng = np.random.default_rng(options.seed)
    logits = {id(s): context_logits(s) for s in (source, target)}
    by_name = {pair.name: pair for pair in pairs}
    configs = [("two backends, no truncation", t) for t in (0.5, 1.0, 1.5)] + [(CHAIN_PAIR, 1.0)]
    measured: dict[str, list[SpeculativeRun]] = {}
    chi_rows, findings = [], []
    for pair_name, temperature in configs:
        pair = by_name[pair_name]
        draft_params, target_params = pair.params(temperature)
        draft = source_law(pair.draft, draft_params, logits=logits[id(pair.draft)])
        goal = source_law(pair.target, target_params, logits=logits[id(pair.target)])
        label = f"{pair_name}, τ={temperature:g}"
        options.progress(f"speculative sampling: {label}")
        measured[label] = [
            speculative_generate(
                goal,
                draft,
                tuple(d.context),
                SAMPLER_TOKENS,
                K,
                rng,
                stop_tokens=pair.target.eos_token_ids,
            )
            for d in documents[-1][1]
        ]
        if temperature == 1.0:
            runs = 500 * options.scale
            test, _ = output_law_test(
                goal, draft, tuple(documents[-1][1][0].context), K, 2, runs, rng
            )
            chi_rows.append(
                (
                    label,
                    str(runs),
                    str(test.cells),
                    f"{test.statistic:.1f}",
                    str(test.cells - 1),
                    f"{test.p_value:.3f}",
                )
            )
            verdict = "reproduced" if test.p_value >= FALSE_ALARM else "not reproduced"
            findings.append(
                Finding(
                    f"{label}: chi-square p-value of the first two tokens against the target's "
                    f"exact joint law ({runs} runs; the claim predicts p ≥ {FALSE_ALARM:g}, a "
                    f"{FALSE_ALARM:.0%} false-alarm rate)",
                    Estimate(test.p_value, math.nan, math.nan, runs, "p"),
                    verdict,
                )
            )
    rate_findings, rate_table = sampler_findings(measured, rng)
    encoding = (
        "their chat templates encode every prompt to the same ids"
        if same_context
        else "their chat templates encode the prompts differently: each side forces its own"
    )
    notes = [
        f"Draft {source.name}, target {target.name}: {source.vocab_size} tokens each, the "
        f"same token for every id; {encoding}. "
        "The torch weights are the GGUF's Q4_1 weights dequantised: the two backends differ "
        "by llama.cpp's quantised activations and kernel rounding, not by the weights.",
        "The accept/reject rule and the residual max(p − q, 0) are Leviathan et al.'s "
        "(Algorithm 1) and Chen et al.'s (2023, arXiv 2302.01318, speculative sampling); "
        "both prove the output follows the target and that a draft is accepted with "
        "probability Σ min(p, q).",
        "Acceptance here is per drafted token. A round drafts its tokens one at a time and "
        "checks each before the next is drafted; the law of every check is that of drafting "
        "all k first (a check uses nothing after its draft), and a simulator need not compute "
        "the laws of drafts a rejection throws away.",
    ]
    return Outcome(
        rate_findings + findings,
        tables=[
            acceptance_table(exact, TEMPERATURES, rng),
            rate_table,
            Table(
                "Output law against the target (chi-square)",
                ("configuration", "runs", "cells", "statistic", "dof", "p"),
                tuple(chi_rows),
            ),
        ],
        figures=[acceptance_figure(exact, TEMPERATURES, measured)],
        notes=notes,
        runs=[run_id],
        setup={
            "prompts": len(prompts),
            "text tokens": TEXT_TOKENS,
            "k": K,
            "sampler tokens": SAMPLER_TOKENS,
            "temperatures": list(TEMPERATURES),
            "draft": source.name,
            "target": target.name,
        },
    )


EXPERIMENT = Experiment(
    name="speculative",
    title="Speculative decoding: acceptance against temperature, exact and measured",
    claim=(
        "A speculative sampler accepts each drafted token with probability Σ min(p, q) = "
        "1 − TV(p, q), and the tokens it emits follow the target's law exactly."
    ),
    reference=Reference(
        "Leviathan et al.",
        2023,
        "Fast Inference from Transformers via Speculative Decoding",
        "2211.17192",
        "ICML 2023",
    ),
    run=run,
    scale_note="8 × N prompts; 500 × N runs for the chi-square tests",
)
