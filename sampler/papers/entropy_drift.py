"""Entropy drift over length (Cao, Valiant and Liang 2025): generations grow less certain.

Each cluster is one human document (pydoc prose, :mod:`sampler.papers.texts`): its first
tokens are the prompt (raw, no chat template), and the model continues it twice, by pure
sampling (τ = 1, no filter) and with truncation (top-p 0.9), in logged runs. The per-step
entropy of the distribution each draws from is compared, position by position, with the
model's teacher-forced entropy and log loss on the human continuation of the same prompt.
Everything is paired by document: the first third of positions against the last third, and the
generations against the human text at the same positions.
"""

from __future__ import annotations

import numpy as np

from sampler.papers.generations import logged_run, step_matrix
from sampler.papers.intervals import bootstrap_estimate, difference_estimate, ratio_of_weights
from sampler.papers.records import (
    Experiment,
    Figure,
    Finding,
    Options,
    Outcome,
    Reference,
    Table,
    verdict_above,
    verdict_below,
)
from sampler.papers.texts import HUMAN_TEXT, Document, forced_information, human_documents
from sampler.sources.base import LogitSource

__all__ = ["EXPERIMENT", "thirds"]

DOCUMENTS, PREFIX, TOKENS = 8, 32, 192
TRUNCATION = {"top_p": 0.9}


def thirds(values: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """``((sums, counts) of the first third, (sums, counts) of the last third)`` of the
    positions of ``values [G, T]`` per row, NaN (a row that had ended) left out."""
    third = values.shape[1] // 3
    parts = []
    for block in (values[:, :third], values[:, -third:]):
        present = ~np.isnan(block)
        parts.append((np.where(present, block, 0.0).sum(axis=1), present.sum(axis=1) * 1.0))
    return tuple(parts)


def _drift_gap(first: np.ndarray, second: np.ndarray) -> callable:
    """The statistic ``drift(first) - drift(second)``, drift = last third − first third."""
    (a0, a1), (b0, b1) = thirds(first), thirds(second)
    parts = [ratio_of_weights(*p) for p in (a1, a0, b1, b0)]
    return lambda w: (parts[0](w) - parts[1](w)) - (parts[2](w) - parts[3](w))


def _smoothed(values: np.ndarray, window: int = 16) -> np.ndarray:
    mean = np.nanmean(values, axis=0)
    return np.convolve(mean, np.ones(window) / window, mode="valid")


def _figure(curves: dict[str, np.ndarray]) -> Figure:
    from sampler.papers.writer import png_bytes
    from sampler.plots.figures import finish, pyplot

    figure, axes = pyplot().subplots(figsize=(7, 4.5))
    for index, (label, values) in enumerate(curves.items()):
        smooth = _smoothed(values)
        axes.plot(
            np.arange(len(smooth)) + 8,
            smooth,
            color=f"C{index}",
            label=label,
            linestyle="--" if label.startswith("human") else "-",
        )
    finish(
        figure,
        axes,
        "position after the prompt (tokens; 16-token moving mean)",
        "nats per token",
        "Entropy over length: generations vs human text",
    )
    return Figure(
        "entropy_over_length",
        "Per-step entropy against position, mean over documents",
        png_bytes(figure),
    )


def run(options: Options, source: LogitSource) -> Outcome:
    rng = np.random.default_rng(options.seed)
    tokens = TOKENS * options.scale
    prompts, documents = [], []
    for document in human_documents(source, DOCUMENTS * options.scale, PREFIX + tokens):
        ids = document.context + document.targets
        prompt = source.decode(ids[: PREFIX + 1])
        prompts.append(prompt)
        documents.append(Document(document.name, source.encode(prompt, False), ids[PREFIX + 1 :]))
    options.progress(f"teacher forcing {len(documents)} pydoc topics × {tokens} tokens")
    human = forced_information(source, documents)
    curves = {"human text: entropy": human.entropy, "human text: log loss": human.surprisal}
    runs = []
    for label, settings in (("pure sampling τ=1", {}), ("top-p 0.9", TRUNCATION)):
        run_id, completions = logged_run(
            options, source, prompts, [1.0], 1, tokens, raw=True, **settings
        )
        runs.append(run_id)
        curves[label] = step_matrix(completions, "entropy_final", tokens)
    pure, truncated = curves["pure sampling τ=1"], curves["top-p 0.9"]
    early, late = thirds(pure)
    _, human_late = thirds(human.surprisal)
    drift = difference_estimate(early, late, rng, "nats")
    above = difference_estimate(human_late, late, rng, "nats")
    gap = bootstrap_estimate(_drift_gap(truncated, pure), len(documents), rng, "nats")
    findings = [
        Finding(
            "pure sampling: mean entropy over the last third of positions minus the first "
            "third; claim: > 0 (entropy grows with length)",
            drift,
            verdict_above(drift),
        ),
        Finding(
            "pure sampling's entropy over the last third minus the model's log loss on the "
            "human continuation there; claim: > 0 (miscalibrated)",
            above,
            verdict_above(above),
        ),
        Finding(
            "top-p 0.9's drift minus pure sampling's; claim: < 0 (truncation curbs the drift)",
            gap,
            verdict_below(gap),
        ),
    ]
    rows = []
    for label, values in curves.items():
        (s0, c0), (s1, c1) = thirds(values)
        rows.append((label, f"{s0.sum() / c0.sum():.3f}", f"{s1.sum() / c1.sum():.3f}"))
    return Outcome(
        findings,
        tables=[
            Table(
                "Mean nats per token, first and last third of positions",
                ("series", "first third", "last third"),
                tuple(rows),
            )
        ],
        figures=[_figure(curves)],
        notes=[
            f"Human text: {HUMAN_TEXT}. Each of {len(documents)} topics gives a prompt (its "
            f"first {PREFIX + 1} tokens, decoded, sent raw) and a human continuation of "
            f"{tokens} tokens, teacher-forced after the same prompt.",
            "Generations: the entropy of the distribution each draw used (entropy_final; for "
            "pure sampling the model's own). A generation that ends at EOS contributes only "
            "the positions it reached.",
        ],
        runs=runs,
        setup={
            "documents": len(documents),
            "prompt tokens": PREFIX + 1,
            "tokens": tokens,
            "truncation": TRUNCATION,
        },
    )


EXPERIMENT = Experiment(
    name="entropy-drift",
    title="Entropy drift: generations grow less certain with length",
    claim=(
        "Sampling from a language model's own distribution accumulates errors, so the per-step "
        "entropy of its generations rises with length above its log loss on human text, and "
        "truncation is what keeps it down."
    ),
    reference=Reference(
        "Cao, Valiant and Liang",
        2025,
        "On the Entropy Calibration of Language Models",
        "2511.11966",
        "NeurIPS 2025",
    ),
    run=run,
    scale_note="8N documents, 192N tokens",
)
