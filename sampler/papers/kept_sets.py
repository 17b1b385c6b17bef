"""What a truncation rule keeps, computed by the engine itself on given logits.

Every count here is read off :func:`sampler.engine.sampling.distribution`, the exact
distribution a draw uses: a token is kept when its final probability is above zero. So these
experiments test the engine's stages as much as the papers' claims.

Examples
--------
>>> logits = np.array([[3.0, 1.0, 0.2, -4.0]])
>>> kept, hit = kept_and_hit(logits, np.array([2]), [rule("top_k", 2), rule("top_p", 1.0)])
>>> kept.tolist(), hit.tolist()
([[2], [4]], [[False], [True]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sampler.engine.params import SamplingParams
from sampler.engine.sampling import distribution
from sampler.engine.stages import switched_on

__all__ = ["TRUNCATION_ORDER", "kept_and_hit", "rule", "rule_label"]

# Temperature first, then the truncation stages, as the papers define them (truncation of the
# tempered distribution). Only one of them is on in each rule, so their order does not matter.
TRUNCATION_ORDER = (
    "temperature",
    "top_n_sigma",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "epsilon",
    "eta",
)


def rule(setting: str, value: Any, temperature: float = 1.0) -> SamplingParams:
    """One truncation rule (``rule("top_p", 0.9)``) at ``temperature``, temperature first."""
    return SamplingParams(temperature=temperature, order=TRUNCATION_ORDER, **{setting: value})


def rule_label(params: SamplingParams) -> str:
    """``top_p=0.9`` (or ``no filter``): the rule's switched-on settings."""
    on = switched_on(params.settings())
    shown = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in on.items()]
    return ", ".join(shown) or "no filter"


def kept_and_hit(
    logits: np.ndarray, targets: np.ndarray, rules: Sequence[SamplingParams]
) -> tuple[np.ndarray, np.ndarray]:
    """Per rule and row of ``logits [G, V]``: how many tokens the rule keeps ``[S, G]`` and
    whether it keeps ``targets [G]`` (the true next token) ``[S, G]``."""
    kept = np.empty((len(rules), logits.shape[0]), dtype=np.int64)
    hit = np.empty((len(rules), logits.shape[0]), dtype=bool)
    rows = np.arange(logits.shape[0])
    for index, params in enumerate(rules):
        probs = distribution(logits, params)
        kept[index] = (probs > 0).sum(axis=1)
        hit[index] = probs[rows, targets] > 0
    return kept, hit
