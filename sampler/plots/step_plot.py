"""One step of a model as a picture: its likeliest tokens' probability before and after the
chain, or before and after the grammar's mask when the chain has one
(:func:`~sampler.analysis.model_step.before_after`). A token the chain drops keeps its
"before" bar, hatched and marked ✗, so a cut reads without colour."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sampler.analysis.model_step import StageTrace, before_after
from sampler.plots.figures import (
    check_figure_path,
    plain_text,
    printable_label,
    pyplot,
    save_figure,
)

__all__ = ["plot_step"]

SHORT_LABEL = 4  # characters: labels this short stand level under their bars


def _telemetry(step: StageTrace, vocab_size: int) -> str:
    """The mask's numbers in one line (the grammar stage's notes)."""
    notes = step.notes
    top1 = "illegal" if notes["grammar_top1_illegal"] else "legal"
    forced = " · forced" if notes["grammar_forced"] else ""
    return (
        f"mask allows {int(notes['grammar_allowed']):,} of {vocab_size:,} tokens · removed "
        f"probability {notes['grammar_removed_mass']:.4f} · KL {notes['grammar_kl']:.3f} nats · "
        f"model's top-1 {top1}{forced}"
    )


def plot_step(
    steps: Sequence[StageTrace],
    tokens: Sequence[int],
    labels: Sequence[str],
    title: str,
    path: str | os.PathLike[str],
) -> Path:
    """Draw ``tokens`` (ids, with their ``labels``) of a traced step to a PNG or SVG file.

    Two bars per token: the probability before (what the mask received, or the model's own)
    and after (renormalised over what is left). Dropped tokens: the "before" bar hatched, a ✗
    above it, and no "after" bar. ``title`` heads the figure; the mask's telemetry follows it.
    """
    target = check_figure_path(path)
    plt = pyplot()
    before, after = before_after(steps)
    masked = after.stage == "grammar"
    ids = np.asarray(tokens, dtype=np.int64)
    p_before = np.asarray(before.probs)[ids]
    p_after = np.asarray(after.probs)[ids]
    dropped = np.array([after.logits[t] is None for t in ids])
    vocab_size = len(after.probs)

    figure, axes = plt.subplots(figsize=(max(8.0, 0.48 * len(ids) + 2.5), 5.2))
    positions = np.arange(len(ids))
    width = 0.4
    before_name = "before the mask" if masked else f"before the chain ({before.stage})"
    after_name = "after the mask (renormalised)" if masked else "after the chain (final)"
    axes.bar(
        positions[~dropped] - width / 2, p_before[~dropped], width, color="tab:blue",
        label=before_name,
    )
    if dropped.any():
        axes.bar(
            positions[dropped] - width / 2, p_before[dropped], width, color="white",
            edgecolor="tab:red", hatch="///", linewidth=1.2,
            label="dropped " + ("by the mask" if masked else "by the chain") + " (hatched, ✗)",
        )
    axes.bar(positions + width / 2, p_after, width, color="tab:orange", label=after_name)
    top = max(float(p_before.max()), float(p_after.max()), 1e-9)
    for x, p in zip(positions[dropped], p_before[dropped], strict=True):
        axes.text(x - width / 2, p + 0.015 * top, "✗", ha="center", va="bottom",
                  color="tab:red", fontsize=11, fontweight="bold")
    names = [plain_text(printable_label(label)) for label in labels]
    axes.set_xticks(positions, names, fontfamily="monospace", fontsize=10)
    for tick, name, cut in zip(axes.get_xticklabels(), names, dropped, strict=True):
        if len(name) > SHORT_LABEL:  # a short label reads best level, a long one tilted
            tick.set_rotation(60)
            tick.set_horizontalalignment("right")
            tick.set_rotation_mode("anchor")
        if cut:
            tick.set_color("tab:red")
    axes.set_xlim(-0.7, len(ids) - 0.3)
    axes.set_ylim(0, top * 1.12)
    axes.set_xlabel("token (the model's likeliest, then the likeliest after; ␣ = space)")
    axes.set_ylabel("probability")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize="small", loc="upper right")
    subtitle = _telemetry(after, vocab_size) if masked else (
        f"kept {after.kept_tokens:,} of {vocab_size:,} tokens · kept mass {after.kept_mass:.4f}"
    )
    axes.set_title(plain_text(f"{title}\n{subtitle}"), fontsize=10, loc="left")
    figure.tight_layout()
    try:
        return save_figure(figure, target)
    finally:
        plt.close(figure)
