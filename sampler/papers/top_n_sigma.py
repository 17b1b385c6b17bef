"""Top-nσ's kept set does not grow with temperature; top-p's and min-p's do (Tang et al. 2024).

Two measurements. (1) Controlled: the contexts of real generations (one logged run at
τ = 0.7, no filter), teacher-forced; at every step the kept-set size of each rule at each τ of
a grid, read off the engine's exact distribution: the same contexts at every τ, so only the
temperature changes. (2) Each rule's own generations at a few τ (logged runs), whose contexts
drift with τ: what a user sees. Findings (verdicts) are on (1); (2) is a table and a figure.
Clusters are prompts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sampler.papers.generations import logged_run, prompts_for, step_matrix
from sampler.papers.intervals import difference_estimate, ratio_estimate
from sampler.papers.kept_sets import kept_and_hit, rule, rule_label
from sampler.papers.records import (
    Experiment,
    Figure,
    Finding,
    Options,
    Outcome,
    Reference,
    Table,
    verdict_above,
    verdict_within,
)
from sampler.papers.texts import Document, forced_steps
from sampler.sources.base import LogitSource, use_chat

__all__ = ["EXPERIMENT", "controlled_kept"]

TEMPERATURES = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
RULES = (("top_n_sigma", 1.0), ("top_p", 0.9), ("min_p", 0.1))
OWN_TEMPERATURES = (0.7, 1.5, 3.0)
CONTEXT_TEMPERATURE = 0.7
TOKENS = 48
# a mean change below half a token per step is no growth: the kept set is a whole number
NO_GROWTH = 0.5
# the chain each rule's own generations run: top-nσ is not in the hf chain; its kept set is the
# same before or after temperature (max and σ of the logits both scale by 1/τ)
OWN_ORDER = {"top_n_sigma": "llama.cpp", "top_p": "hf", "min_p": "hf"}


def controlled_kept(
    source: LogitSource,
    documents: list[Document],
    rules: Sequence[tuple[str, float]],
    temperatures: Sequence[float],
) -> tuple[np.ndarray, np.ndarray]:
    """Summed kept-set sizes ``[rules, temperatures, documents]`` over each document's
    teacher-forced steps, and the steps per document ``[documents]``."""
    grid = [rule(name, value, tau) for name, value in rules for tau in temperatures]
    sums = np.zeros((len(grid), len(documents)))
    steps = np.zeros(len(documents))
    for _, logits, targets, active in forced_steps(source, documents):
        kept, _ = kept_and_hit(logits, targets, grid)
        sums += np.where(active, kept, 0)
        steps += active
    return sums.reshape(len(rules), len(temperatures), len(documents)), steps


def _figure(controlled: np.ndarray, own: dict[str, np.ndarray], rules: Sequence) -> Figure:
    from sampler.papers.writer import png_bytes
    from sampler.plots.figures import finish, pyplot

    figure, axes = pyplot().subplots(figsize=(7, 4.5))
    for index, (name, value) in enumerate(rules):
        color = f"C{index}"
        values, low, high = controlled[index].T
        axes.errorbar(
            TEMPERATURES,
            values,
            yerr=[values - low, high - values],
            color=color,
            marker="o",
            capsize=3,
            label=f"{name}={value:g}, same contexts",
        )
        if name in own:
            axes.plot(
                OWN_TEMPERATURES,
                own[name],
                color=color,
                linestyle="--",
                marker="s",
                label=f"{name}={value:g}, own generations",
            )
    axes.set_yscale("log")
    finish(
        figure,
        axes,
        "temperature τ",
        "mean kept-set size (tokens, log scale)",
        "Kept-set size vs temperature (95 % CI over prompts)",
    )
    return Figure(
        "kept_set_vs_temperature", "Mean kept-set size per step against τ", png_bytes(figure)
    )


def run(options: Options, source: LogitSource) -> Outcome:
    rng = np.random.default_rng(options.seed)
    prompts, tokens = prompts_for(options.scale), TOKENS * options.scale
    chat = use_chat(source, False)
    context_run, contexts = logged_run(options, source, prompts, [CONTEXT_TEMPERATURE], 1, tokens)
    documents = [
        Document(c["prompt"], source.encode(c["prompt"], chat), list(c["token_ids"]))
        for c in contexts
        if c["token_ids"]
    ]
    options.progress(f"teacher forcing {len(documents)} generations, {len(RULES)} rules")
    sums, steps = controlled_kept(source, documents, RULES, TEMPERATURES)
    findings, rows, curves = [], [], np.zeros((len(RULES), len(TEMPERATURES), 3))
    for index, (name, value) in enumerate(RULES):
        for t_index in range(len(TEMPERATURES)):
            estimate = ratio_estimate(sums[index, t_index], steps, rng, "tokens")
            curves[index, t_index] = estimate.value, estimate.low, estimate.high
        growth = difference_estimate(
            (sums[index, 0], steps), (sums[index, -1], steps), rng, "tokens"
        )
        invariant = name == "top_n_sigma"
        verdict = (
            verdict_within(growth, -NO_GROWTH, NO_GROWTH) if invariant else verdict_above(growth)
        )
        claim = "no growth (within ±0.5)" if invariant else "grows (> 0)"
        findings.append(
            Finding(
                f"{name}={value:g}: mean kept-set size at τ = {TEMPERATURES[-1]:g} minus at "
                f"τ = {TEMPERATURES[0]:g}, same contexts; claim: {claim}",
                growth,
                verdict,
            )
        )
        rows.append(
            (
                rule_label(rule(name, value)),
                *(f"{c[0]:.1f} ({c[1]:.1f}–{c[2]:.1f})" for c in curves[index]),
            )
        )
    own_means, own_rows, runs = {}, [], [context_run]
    for name, value in RULES:
        run_id, completions = logged_run(
            options,
            source,
            prompts,
            OWN_TEMPERATURES,
            1,
            tokens,
            order=OWN_ORDER[name],
            **{name: value},
        )
        runs.append(run_id)
        kept = step_matrix(completions, "kept_tokens", tokens)
        cells, means = [], []
        for t_index in range(len(OWN_TEMPERATURES)):
            mine = kept[t_index :: len(OWN_TEMPERATURES)]  # plan order: prompt, then τ
            estimate = ratio_estimate(np.nansum(mine, axis=1), (~np.isnan(mine)).sum(axis=1), rng)
            means.append(estimate.value)
            cells.append(f"{estimate.value:.1f} ({estimate.low:.1f}–{estimate.high:.1f})")
        own_means[name] = np.array(means)
        own_rows.append((f"{name}={value:g} ({OWN_ORDER[name]} order)", *cells))
    return Outcome(
        findings,
        tables=[
            Table(
                "Mean kept-set size, same contexts (95 % CI over prompts)",
                ("rule", *(f"τ={t:g}" for t in TEMPERATURES)),
                tuple(rows),
            ),
            Table(
                "Mean kept-set size on each rule's own generations",
                ("rule", *(f"τ={t:g}" for t in OWN_TEMPERATURES)),
                tuple(own_rows),
                "Contexts differ by τ here: a flatter, drifting text has flatter distributions.",
            ),
        ],
        figures=[_figure(curves, own_means, RULES)],
        notes=[
            f"Contexts: the generations of run {context_run} (τ = {CONTEXT_TEMPERATURE:g}, no "
            f"filter), {len(documents)} prompts × up to {tokens} tokens, teacher-forced; each "
            "rule runs after temperature (as in the papers); a token is kept when the engine's "
            "final probability of it is above zero.",
            "Top-nσ keeps the tokens whose logit is within nσ of the largest; dividing the "
            "logits by τ divides both the largest and σ by τ, so the kept set cannot change: "
            "the controlled numbers test that our engine does exactly this.",
        ],
        runs=runs,
        setup={
            "prompts": len(prompts),
            "tokens": tokens,
            "temperatures": list(TEMPERATURES),
            "own generations at": list(OWN_TEMPERATURES),
        },
    )


EXPERIMENT = Experiment(
    name="top-n-sigma",
    title="Top-nσ: a kept set that does not grow with temperature",
    claim=(
        "Top-nσ keeps the tokens whose logit lies within n standard deviations of the largest, "
        "so its kept set stays the same as the temperature rises, while the kept sets of top-p "
        "and min-p grow."
    ),
    reference=Reference(
        "Tang et al.",
        2024,
        "Top-nσ: Not All Logits Are You Need",
        "2411.07641",
    ),
    run=run,
    scale_note="8N prompts (at most 32), 48N tokens",
)
