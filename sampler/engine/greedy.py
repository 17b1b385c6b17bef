"""The greedy fast path: a group of greedy rows whose chain has no stage on but temperature.

Such a row's chain (τ = 0: only the tied maxima stay) and draw (the lowest-id maximum) come
down to ``argmax`` of its raw logits, and its step statistics to that token and the base
softmax's two sums: the final distribution is one-hot, the tempered one uniform over the tied
maxima. The general path (chain → :class:`~sampler.engine.final_distribution.FinalDistribution`
→ :func:`~sampler.engine.stats.step_stats`) reaches the same numbers through about 700 Python
calls and twenty passes over the vocabulary per step; this one through a few dozen calls and
six passes, which at batch 1 is most of the engine's time beside a llama.cpp decode. Every
number is computed by the same expression as there, so the two agree bit for bit
(``tests/test_fast_paths.py`` compares them field by field).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from sampler.engine.candidates import overflow_is_infinite
from sampler.engine.params import SamplingParams
from sampler.engine.stats import StepStats, telemetry_fields
from sampler.entropy import row_softmax_sums, scratch

__all__ = ["greedy_only", "greedy_step"]


def greedy_only(params: Sequence[SamplingParams]) -> bool:
    """Whether every row is greedy and has no stage on but temperature.

    (Dynamic temperature does nothing at τ = 0, and a stage that is off leaves the
    candidates as they were: the chain is the τ = 0 limit alone.)
    """
    return all(p.is_greedy and set(p.active_stages) <= {"temperature"} for p in params)


@overflow_is_infinite
def greedy_step(
    raw: np.ndarray,
    raw_peak: np.ndarray,
    telemetry: Mapping[str, np.ndarray],
    stats: bool,
) -> tuple[np.ndarray, StepStats | None]:
    """Tokens ``[B]`` of greedy rows (the lowest-id maximum) and, with ``stats``, the step's
    :class:`StepStats`, as :func:`~sampler.engine.stats.step_stats` computes them.

    ``raw`` are validated logits ``[B, V]`` and ``raw_peak`` their row maxima.
    """
    tokens = np.argmax(raw, axis=1)
    if not stats:
        return tokens, None
    rows, width = raw.shape
    shifted, weights, product = scratch("stats.base", 3, width, raw.dtype)
    total, weighted = np.zeros(rows), np.zeros(rows)
    ties = np.empty(rows, dtype=np.int64)
    for i in range(rows):
        total[i], weighted[i] = row_softmax_sums(
            raw[i], raw_peak[i], shifted, weights, product, top=int(tokens[i])
        )
        # at τ = 0 the tempered logits are 0 on the tied maxima and -inf elsewhere
        ties[i] = np.count_nonzero(raw[i] == raw_peak[i])
    base_log_total = np.log(total)
    chosen_base = (raw[np.arange(rows), tokens] - raw_peak).astype(np.float64) - base_log_total
    return tokens, StepStats(
        entropy_base=base_log_total - weighted / total,
        entropy_temp=np.asarray(np.log(ties), dtype=np.float64),
        entropy_final=np.zeros(rows),
        surprisal=np.zeros(rows),
        surprisal_base=-chosen_base,
        top1_prob=np.ones(rows),
        kept_tokens=np.ones(rows, dtype=np.int64),
        kept_mass=np.exp(chosen_base),
        kl_final_base=-chosen_base,
        base_argmax=tokens.astype(np.int64),
        **telemetry_fields(telemetry, rows),
    )
