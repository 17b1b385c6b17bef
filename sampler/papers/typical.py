"""Human text is "typical": surprisal minus entropy clusters near zero (Meister et al. 2023).

For every token of human text (teacher-forced pydoc prose,
:func:`sampler.papers.texts.forced_information`) the surprisal of the true next token
minus the entropy of the model's distribution there, at τ = 1; and the same quantity, under the
model's own distribution (``surprisal_base - entropy_base``), along the generations of several
samplers (logged runs). Findings: the human mean lies near zero (within ±0.5 nat), and at the
same human contexts the token greedy decoding would pick lies farther from the entropy than the
human one (mode-seeking text is atypical). Clusters are documents and prompts.
"""

from __future__ import annotations

import numpy as np

from sampler.papers.generations import logged_run, prompts_for, step_matrix
from sampler.papers.intervals import difference_estimate, ratio_estimate
from sampler.papers.records import (
    Experiment,
    Figure,
    Finding,
    Options,
    Outcome,
    Reference,
    Table,
    verdict_below,
    verdict_within,
)
from sampler.papers.texts import HUMAN_TEXT, Document, forced_information, human_documents
from sampler.sources.base import LogitSource

__all__ = ["EXPERIMENT", "human_deviations"]

DOCUMENTS, TOKENS = 16, 64
# "near zero": within half a nat, a factor e^0.5 ≈ 1.6 in probability, a fraction of the
# 2-4 nat entropies a small model has on prose
NEAR_ZERO = 0.5
SAMPLERS = (
    ("greedy", 0.0, {}),
    ("pure sampling τ=1", 1.0, {}),
    ("top-p 0.9", 1.0, {"top_p": 0.9}),
    ("typical 0.9", 1.0, {"typical_p": 0.9}),
)


def human_deviations(
    source: LogitSource, documents: list[Document]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per document, ``surprisal - entropy`` of the true tokens at τ = 1, and
    ``-log p_max - entropy``: the same for the token greedy decoding would have chosen at the
    same contexts."""
    forced = forced_information(source, documents)
    human = forced.surprisal - forced.entropy
    greedy = forced.best_surprisal - forced.entropy
    return [r[~np.isnan(r)] for r in human], [r[~np.isnan(r)] for r in greedy]


def _figure(series: dict[str, np.ndarray]) -> Figure:
    from sampler.papers.writer import png_bytes
    from sampler.plots.figures import finish, pyplot

    figure, axes = pyplot().subplots(figsize=(7, 4.5))
    bins = np.linspace(-8, 8, 65)
    for index, (label, values) in enumerate(series.items()):
        axes.hist(
            np.clip(values, -8, 8),
            bins=bins,
            density=True,
            histtype="step",
            linewidth=2 if index == 0 else 1.2,
            color=f"C{index}",
            label=label,
        )
    axes.axvline(0, color="black", linewidth=0.8)
    finish(
        figure,
        axes,
        "surprisal − entropy (nats; clipped to ±8)",
        "density",
        "Surprisal minus entropy: human text vs generations",
    )
    return Figure(
        "surprisal_minus_entropy", "Histogram of surprisal − entropy per token", png_bytes(figure)
    )


def _row(label: str, values: list[np.ndarray], rng: np.random.Generator) -> tuple:
    steps = np.array([len(v) for v in values], dtype=float)
    mean = ratio_estimate(np.array([v.sum() for v in values]), steps, rng)
    absolute = ratio_estimate(np.array([np.abs(v).sum() for v in values]), steps, rng)
    return (label, f"{mean.shown(2)}", f"{absolute.shown(2)}", str(mean.clusters))


def run(options: Options, source: LogitSource) -> Outcome:
    rng = np.random.default_rng(options.seed)
    tokens = TOKENS * options.scale
    documents = human_documents(source, DOCUMENTS * options.scale, tokens)
    options.progress(f"teacher forcing {len(documents)} pydoc topics × {tokens} tokens")
    human, greedy = human_deviations(source, documents)
    steps = np.array([len(v) for v in human], dtype=float)
    human_sums = np.array([v.sum() for v in human])
    mean = ratio_estimate(human_sums, steps, rng, "nats")
    farther = difference_estimate(
        (np.array([np.abs(v).sum() for v in greedy]), steps),
        (np.array([np.abs(v).sum() for v in human]), steps),
        rng,
        "nats",
    )
    findings = [
        Finding(
            "human text: mean surprisal − entropy per token; claim: near 0 (within ±0.5)",
            mean,
            verdict_within(mean, -NEAR_ZERO, NEAR_ZERO),
        ),
        Finding(
            "mean |surprisal − entropy| of the human token minus that of greedy's token at "
            "the same contexts; claim: < 0 (human text is more typical)",
            farther,
            verdict_below(farther),
        ),
    ]
    rows = [
        _row("human text (pydoc prose)", human, rng),
        _row("greedy's token at the human contexts", greedy, rng),
    ]
    series, runs = {"human text": np.concatenate(human)}, []
    prompts = prompts_for(options.scale)
    for label, tau, settings in SAMPLERS:
        run_id, completions = logged_run(options, source, prompts, [tau], 1, tokens, **settings)
        runs.append(run_id)
        deviation = step_matrix(completions, "surprisal_base", tokens) - step_matrix(
            completions, "entropy_base", tokens
        )
        per_row = [row[~np.isnan(row)] for row in deviation if (~np.isnan(row)).any()]
        rows.append(_row(f"{label}, own generations", per_row, rng))
        series[label] = np.concatenate(per_row)
    return Outcome(
        findings,
        tables=[
            Table(
                "Surprisal − entropy per token (95 % CI over documents / prompts)",
                ("text", "mean (nats)", "mean absolute (nats)", "clusters"),
                tuple(rows),
                "Generations: the model's own (τ = 1, unfiltered) surprisal of the token "
                "drawn minus its entropy, whatever the sampler drew with.",
            )
        ],
        figures=[_figure(series)],
        notes=[
            f"Human text: {HUMAN_TEXT}; {len(documents)} topics × {tokens} tokens, "
            "teacher-forced at τ = 1 with no prompt.",
            "Unfiltered sampling at τ = 1 draws each token from the model's own distribution, "
            "so its mean surprisal − entropy is 0 in expectation: its row checks the engine.",
        ],
        runs=runs,
        setup={
            "documents": len(documents),
            "tokens": tokens,
            "prompts": len(prompts),
            "samplers": [label for label, _, _ in SAMPLERS],
        },
    )


EXPERIMENT = Experiment(
    name="typical",
    title="Typical sampling: human text stays near the expected information",
    claim=(
        "The information a human-written token carries (its surprisal) stays close to the "
        "information the model expects at that position (its entropy), so surprisal minus "
        "entropy clusters near zero, unlike the high-probability tokens mode-seeking decoding "
        "picks."
    ),
    reference=Reference(
        "Meister, Pimentel, Wiher and Cotterell",
        2023,
        "Locally Typical Sampling",
        "2202.00666",
        "TACL 2023",
    ),
    run=run,
    scale_note="16N documents and 8N prompts (at most 32), 64N tokens",
)
