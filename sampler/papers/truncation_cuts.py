"""How often each truncation rule would cut the true next token of human text (Hewitt et al.).

Teacher forcing over human-written documents (:mod:`sampler.papers.texts`): at every
position, for every rule at every value of its grid, the engine's exact distribution at τ = 1
says how many tokens the rule keeps and whether the token that actually comes next is among
them. Each rule traces a curve of "share of true tokens cut" against "mean kept-set size".
Hewitt et al. argue that top-p cuts plausible words a probability threshold (ε, η) keeps: at the
same mean kept-set size, η (and ε) should cut fewer of the true tokens than top-p. Sizes are
matched by interpolating each curve (linear in log size) at top-p = 0.95's mean size.
Clusters are documents.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sampler.papers.intervals import bootstrap_estimate
from sampler.papers.kept_sets import kept_and_hit, rule
from sampler.papers.records import (
    Experiment,
    Figure,
    Finding,
    Options,
    Outcome,
    Reference,
    Table,
    verdict_above,
)
from sampler.papers.texts import HUMAN_TEXT, Document, forced_steps, human_documents
from sampler.sources.base import LogitSource

__all__ = ["EXPERIMENT", "GRIDS", "CutCounts", "count_cuts", "share_at_size"]

# each rule's values from permissive to strict
GRIDS: dict[str, tuple[float, ...]] = {
    "top_p": (0.99, 0.95, 0.9, 0.8, 0.6, 0.4),
    "top_k": (1000, 300, 100, 30, 10, 3),
    "min_p": (0.001, 0.005, 0.02, 0.05, 0.1, 0.2),
    "epsilon": (1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
    "eta": (1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
    "typical_p": (0.99, 0.95, 0.9, 0.8, 0.6, 0.4),
    "top_n_sigma": (4.0, 3.0, 2.0, 1.5, 1.0, 0.5),
}
MATCH = ("top_p", 0.95)  # the sizes are compared at this rule's mean kept-set size
COMPARED = ("eta", "epsilon")  # the rules the claim says cut fewer true tokens than top-p
DOCUMENTS, TOKENS = 16, 32


class CutCounts:
    """Per rule setting ``s`` and document ``g``: true tokens cut ``cut [S, G]``, kept-set
    sizes summed ``kept [S, G]``, and positions scored ``steps [G]``."""

    def __init__(self, settings: list[tuple[str, float]], documents: int) -> None:
        self.settings = settings
        self.cut = np.zeros((len(settings), documents))
        self.kept = np.zeros((len(settings), documents))
        self.steps = np.zeros(documents)

    def shares(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pooled cut share and mean kept size ``[R, S]`` under cluster weights ``[R, G]``."""
        steps = weights @ self.steps
        return (weights @ self.cut.T) / steps[:, None], (weights @ self.kept.T) / steps[:, None]


def count_cuts(
    source: LogitSource, documents: list[Document], grids: dict[str, Sequence[float]]
) -> CutCounts:
    """Teacher-force ``documents`` and count, per rule setting, cuts and kept-set sizes."""
    settings = [(name, value) for name, values in grids.items() for value in values]
    rules = [rule(name, value) for name, value in settings]
    counts = CutCounts(settings, len(documents))
    for _, logits, targets, active in forced_steps(source, documents):
        kept, hit = kept_and_hit(logits, targets, rules)
        counts.cut += np.where(active, ~hit, 0)
        counts.kept += np.where(active, kept, 0)
        counts.steps += active
    return counts


def share_at_size(sizes: np.ndarray, shares: np.ndarray, target: float) -> float:
    """A rule's cut share at mean kept size ``target``, linear in log size between its grid
    points; NaN outside the sizes its grid reached."""
    order = np.argsort(sizes)
    logs = np.log(sizes[order])
    if not logs[0] <= math.log(target) <= logs[-1]:
        return math.nan
    return float(np.interp(math.log(target), logs, shares[order]))


def _matched(counts: CutCounts, rule_name: str) -> callable:
    columns = [i for i, (name, _) in enumerate(counts.settings) if name == rule_name]
    top_p = [i for i, (name, _) in enumerate(counts.settings) if name == MATCH[0]]
    anchor = counts.settings.index(MATCH)

    def statistic(weights: np.ndarray) -> np.ndarray:
        share, size = counts.shares(weights)
        out = np.empty(len(weights))
        for r in range(len(weights)):
            target = size[r, anchor]
            mine = share_at_size(size[r, columns], share[r, columns], target)
            out[r] = share_at_size(size[r, top_p], share[r, top_p], target) - mine
        return out

    return statistic


def _figure(counts: CutCounts) -> Figure:
    from sampler.papers.writer import png_bytes
    from sampler.plots.figures import finish, pyplot

    share, size = counts.shares(np.ones((1, len(counts.steps))))
    figure, axes = pyplot().subplots(figsize=(7, 4.5))
    for index, name in enumerate(GRIDS):
        columns = [i for i, (n, _) in enumerate(counts.settings) if n == name]
        axes.plot(
            size[0, columns], 100 * share[0, columns], marker="o", color=f"C{index}", label=name
        )
    axes.set_xscale("log")
    finish(
        figure,
        axes,
        "mean kept-set size (tokens, log scale)",
        "true next tokens cut (%)",
        "What each truncation rule cuts of human text",
    )
    return Figure(
        "cut_share_vs_kept_size",
        "Share of true next tokens cut against the mean kept-set size, one point per setting",
        png_bytes(figure),
    )


def run(options: Options, source: LogitSource) -> Outcome:
    rng = np.random.default_rng(options.seed)
    documents = human_documents(source, DOCUMENTS * options.scale, TOKENS * options.scale)
    options.progress(
        f"teacher forcing {len(documents)} pydoc topics × {TOKENS * options.scale} "
        f"tokens, {sum(map(len, GRIDS.values()))} rule settings"
    )
    counts = count_cuts(source, documents, GRIDS)
    findings = []
    for name in COMPARED:
        estimate = bootstrap_estimate(_matched(counts, name), len(documents), rng, "share")
        findings.append(
            Finding(
                f"top-p's share of true tokens cut minus {name}'s, at top_p=0.95's mean kept-set "
                f"size; claim: > 0 ({name} cuts fewer)",
                estimate,
                verdict_above(estimate),
            )
        )
    share, size = counts.shares(np.ones((1, len(documents))))
    target = size[0, counts.settings.index(MATCH)]
    rows = []
    for name, values in GRIDS.items():
        columns = [i for i, (n, _) in enumerate(counts.settings) if n == name]
        at_match = share_at_size(size[0, columns], share[0, columns], target)
        cells = [
            f"{v:g}: {100 * share[0, c]:.1f} % / {size[0, c]:.0f}"
            for v, c in zip(values, columns, strict=True)
        ]
        rows.append((name, "–" if math.isnan(at_match) else f"{100 * at_match:.2f} %", *cells))
    return Outcome(
        findings,
        tables=[
            Table(
                "True next tokens cut / mean kept-set size, per setting",
                ("rule", f"cut at size {target:.0f}", *(f"setting {i + 1}" for i in range(6))),
                tuple(rows),
                "Each setting cell: value: share of true next tokens cut / mean kept-set size.",
            )
        ],
        figures=[_figure(counts)],
        notes=[
            f"Human text: {HUMAN_TEXT}; {len(documents)} topics in name order "
            f"({documents[0].name} … {documents[-1].name}), the first {TOKENS * options.scale} "
            "tokens after each topic's first token, teacher-forced at τ = 1 with no prompt.",
            "A cut is a true next token whose final probability under the rule is zero; it is "
            "what a sampler with that rule could never have written at that position.",
        ],
        setup={
            "documents": len(documents),
            "tokens": TOKENS * options.scale,
            "matched at": f"{MATCH[0]}={MATCH[1]}",
            "grids": {k: list(v) for k, v in GRIDS.items()},
        },
    )


EXPERIMENT = Experiment(
    name="truncation-cuts",
    title="η-sampling: what each truncation rule cuts of human text",
    claim=(
        "Top-p cuts plausible words that an absolute probability threshold keeps, so on human "
        "text η-sampling (and ε-sampling) cut fewer of the true next tokens than top-p at the "
        "same mean kept-set size."
    ),
    reference=Reference(
        "Hewitt, Manning and Liang",
        2022,
        "Truncation Sampling as Language Model Desmoothing",
        "2210.15191",
        "Findings of EMNLP 2022",
    ),
    run=run,
    scale_note="16N documents (pydoc topics long enough), 32N tokens each",
)
