"""XTC, "exclude top choices" (p-e-w, 2024), as llama.cpp implements it.

With probability ``xtc_probability`` per step, every token whose probability reaches
``xtc_threshold`` is removed except the least likely of them, so the model is pushed off its
most obvious choices while staying among plausible ones. The coin is the row's: the sampler
draws it from the row's own random stream (``rows.state["xtc_coin"]``, one uniform number in
[0, 1) per step), and the stage fires when ``coin <= xtc_probability``; so a row draws the same
tokens alone and in any batch. :func:`sampler.distribution`, given no coin, returns the
mixture of the fired and not-fired distributions: the law a draw follows.

Source: llama.cpp ``src/llama-sampler.cpp``, ``llama_sample_xtc_apply`` (ggml-org/llama.cpp
6f7f63ee; the same in the commit 0c1e570 llama-cpp-python 0.3.36 bundles), added by its
PR #9742: off when the probability is 0 or the threshold above 0.5; the probabilities are the
softmax of the candidates as the earlier stages left them; nothing is cut when fewer than two
tokens reach the threshold, or when the cut would leave fewer than ``min_tokens_to_keep``.
Ties: in rows whose preset ranks ties (the llama.cpp preset) the probabilities are float32 and
exactly one reaching token stays, as in llama.cpp (it removes the first ``reaching - 1`` entries
of its sorted array): the last in the ranking by logit then lowest id, so among tokens tied at
the least likely reaching logit the highest id stays (llama.cpp's unstable sort leaves which one
unspecified). In the other presets every token tied with the least likely reaching one stays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sampler.engine.candidates import Candidates, log_normalizer
from sampler.engine.filters.truncation import float32_probs, top_ranked

if TYPE_CHECKING:
    from sampler.engine.rows import RowParams

__all__ = ["XTC_MAX_THRESHOLD", "xtc", "xtc_rows"]

# Above this threshold XTC does nothing (llama.cpp: "> 0.5 disables XTC"): at most one token
# can then reach it, and XTC never removes the last one that does.
XTC_MAX_THRESHOLD = 0.5


def xtc_rows(rows: RowParams) -> np.ndarray:
    """``[B]`` bool: the rows where XTC may fire (on, and threshold at most 0.5)."""
    return rows.on("xtc_probability") & (rows["xtc_threshold"] <= XTC_MAX_THRESHOLD)


def xtc(candidates: Candidates, rows: RowParams) -> Candidates:
    """Remove the tokens above the least likely one that reaches the threshold, where the
    row's coin fired. Notes ``xtc_fired`` (1 or 0) and ``xtc_removed`` (tokens removed)."""
    eligible = xtc_rows(rows)
    if not eligible.any():
        return candidates
    coin = rows.state.get("xtc_coin")
    if coin is None:  # no sampler (a trace of the chain): show XTC as if its coin fired
        coin = np.zeros(len(eligible))
    fired = eligible & (coin <= rows["xtc_probability"])
    logits = candidates.logits
    # p_i >= t is x_i >= log Z + log t: the reaching tokens, the least likely of them kept
    with np.errstate(divide="ignore"):  # threshold 0: log 0 = -inf, every token reaches it
        bar = log_normalizer(logits) + np.log(np.where(fired, rows["xtc_threshold"], 1.0))
    reaching = logits >= bar[:, None].astype(logits.dtype)
    ranked = fired & rows.ranked()
    if ranked.any():  # llama.cpp: p >= t on float32 probabilities
        threshold = rows["xtc_threshold"].astype(np.float32)[:, None]
        # only finite tokens: at threshold 0 llama.cpp's own -inf entries would reach too and
        # its cut could leave only one of them (no token to draw); we keep a finite one
        reaching[ranked] = (float32_probs(logits[ranked]) >= threshold[ranked]) & np.isfinite(
            logits[ranked]
        )
    count = reaching.sum(axis=1)
    lowest = np.where(reaching, logits, np.inf).min(axis=1)
    removed = (logits > lowest[:, None]) & reaching
    removed_count = np.where(ranked, np.maximum(count - 1, 0), removed.sum(axis=1))
    # llama.cpp's min_keep counts the entries of its array, -inf ones included
    allowed = np.where(ranked, candidates.llama_array_size(), np.isfinite(logits).sum(axis=1))
    cut = fired & (count >= 2) & (allowed - removed_count >= rows.min_keep)
    result = candidates
    if cut.any():  # keep what is at or below the least likely reaching logit
        ceiling = np.where(cut & ~ranked, lowest, np.inf)[:, None].astype(logits.dtype)
        dropped = top_ranked(candidates, np.where(cut & ranked, removed_count, 0))
        kept = (logits <= ceiling) & ~dropped
        result = candidates.with_logits(np.where(kept, logits, -np.inf))
        result = result.sized(cut & ranked, allowed - removed_count)
    return result.noted(
        xtc_fired=np.where(eligible, fired.astype(float), np.nan),
        xtc_removed=np.where(eligible, np.where(cut, removed_count, 0).astype(float), np.nan),
    )
