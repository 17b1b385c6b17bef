"""Statistical verification: do the engine's draws follow `distribution()`?

For each case (logits and params), draws ``draws`` tokens with :class:`~sampler.Sampler`
(rows with distinct row keys, several steps), counts them, and runs Pearson's chi-square
goodness-of-fit test against ``draws * distribution(logits, params)``. Tokens are pooled, in
order of expected count, into bins expecting at least 5 draws (the usual validity rule). A
token drawn where the distribution says probability 0 fails the case outright (p = 0).

The grammar case runs the grammar stage as the engine does (a matcher per row in the sampler's
state, given each drawn token) with a matcher that allows the same tokens at every step
(:class:`FixedMask`): the cases' logits are synthetic, with no vocabulary for a real grammar.
It is there when llguidance is installed (a grammar's params compile their grammar).

Examples
--------
>>> results = run_cases(draws=2000, seed=0, names=["cheat-sheet τ=1"])
>>> results[0].name, results[0].p_value > 1e-4
('cheat-sheet τ=1', True)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sampler.engine.filters.dry import TokenTexts
from sampler.engine.params import SamplingParams
from sampler.engine.sampling import Sampler, distribution
from sampler.engine.state import matcher_array
from sampler.errors import InvalidInputError

__all__ = [
    "CASES",
    "MAX_DRAWS",
    "CaseResult",
    "FixedMask",
    "check_request",
    "chi_square",
    "format_results",
    "run_cases",
]

# 20,000 draws already find a sampler off by a few percent; ten million take minutes
# per case (6 on the 3000-token case here), and more would only add time.
MAX_DRAWS = 10_000_000


def _cases() -> dict[str, tuple[np.ndarray, SamplingParams]]:
    rng = np.random.default_rng(20240501)
    cheat = np.array([3.0, 1.0, 0.2])
    zipf = -1.1 * np.log(np.arange(1, 201))
    ties = np.array([4.0, 1.0, 4.0, 0.5, 4.0, -1.0, 2.0])
    peaked = rng.normal(0, 1, 300)
    peaked[17] = 9.0
    flat = rng.normal(0, 0.3, 3000)
    masked = rng.normal(0, 1, 60)
    masked[::4] = -np.inf
    normal = rng.normal(0, 2, 400)
    return {
        "cheat-sheet τ=1": (cheat, SamplingParams()),
        "cheat-sheet τ=0.5": (cheat, SamplingParams(temperature=0.5)),
        "cheat-sheet τ=2": (cheat, SamplingParams(temperature=2.0)),
        "zipf top-p 0.9": (zipf, SamplingParams(top_p=0.9)),
        "tied maxima, hardmax": (ties, SamplingParams(mode="hardmax")),
        "tied maxima, τ=1": (ties, SamplingParams()),
        "near-degenerate": (peaked, SamplingParams()),
        "flat long tail, 3000 tokens": (flat, SamplingParams(temperature=1.5)),
        "masked tokens": (masked, SamplingParams(temperature=0.8)),
        "top-k 5, τ=0.8": (normal, SamplingParams(top_k=5, temperature=0.8)),
        "min-p 0.1, τ=1.5": (normal, SamplingParams(min_p=0.1, temperature=1.5)),
        "typical 0.8": (normal, SamplingParams(typical_p=0.8)),
        "llama.cpp defaults": (
            normal,
            SamplingParams(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, order="llama.cpp"),
        ),
        "vllm order, same settings": (
            normal,
            SamplingParams(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, order="vllm"),
        ),
        # the law of a draw is the mixture over XTC's coin, fired on 40 % of steps
        "XTC 0.4, threshold 0.05": (
            normal,
            SamplingParams(xtc_probability=0.4, xtc_threshold=0.05, order="llama.cpp"),
        ),
        # each draw is a row's first step, at μ = 2τ (a later step's law depends on its μ)
        "mirostat v2, τ=3": (normal, SamplingParams(mirostat=2, mirostat_tau=3.0)),
        "mirostat v1, τ=4": (zipf, SamplingParams(mirostat=1, mirostat_tau=4.0)),
        "top-H 0.4": (normal, SamplingParams(top_h=0.4)),
        # each draw is a row's first step, where adaptive-p aims at its target itself
        "adaptive-p target 0.3, τ=0.8": (
            normal,
            SamplingParams(adaptive_target=0.3, temperature=0.8, order="llama.cpp"),
        ),
        # DRY with the history below: tokens 5 and 6 would extend repeats and are penalised
        "DRY 0.8 after a repeat": (
            normal,
            SamplingParams(dry_multiplier=0.8, dry_allowed_length=1, order="llama.cpp"),
        ),
        **_grammar_case(normal),
    }


class FixedMask:
    """A grammar matcher allowing the same tokens at every step (the stage reads
    :meth:`allowed`; the sampler gives it each drawn token, which does not move it)."""

    def __init__(self, allowed: np.ndarray) -> None:
        self.mask = allowed

    def allowed(self) -> np.ndarray:
        return self.mask

    def advance(self, token: int) -> None:
        pass

    def copy(self) -> FixedMask:
        return self


# the grammar case's mask: every third token of its 400 (the stage is first, then top-k)
GRAMMAR_MASK = np.arange(400) % 3 == 0


def _grammar_case(logits: np.ndarray) -> dict[str, tuple[np.ndarray, SamplingParams]]:
    if importlib.util.find_spec("llguidance") is None:
        return {}
    # any valid grammar switches the stage on; the case's FixedMask decides what it allows.
    # Two draws: the mask first, and llama.cpp's (draw without it, again after it if illegal)
    grammar = {"grammar": 'root ::= "a"', "temperature": 0.8, "top_k": 20, "order": "llama.cpp"}
    return {
        "grammar mask, top-k 20, τ=0.8": (logits, SamplingParams(**grammar, grammar_mode="mask")),
        "grammar resample, top-k 20, τ=0.8": (
            logits,
            SamplingParams(**grammar, grammar_mode="resample"),
        ),
    }


def _matchers(params: SamplingParams, rows: int) -> list[FixedMask] | None:
    return [FixedMask(GRAMMAR_MASK)] * rows if "grammar" in params.active_stages else None


CASES = _cases()
# DRY reads a history and a vocabulary: "t3 t4 t5 t6" twice, then "t3 t4"; no breakers there.
DRY_HISTORY = [3, 4, 5, 6, 3, 4, 5, 6, 3, 4]


def _dry_context(params: SamplingParams, size: int) -> tuple[list | None, TokenTexts | None]:
    """``(history, vocabulary)`` for a case whose chain runs DRY, else ``(None, None)``."""
    if "dry" not in params.active_stages:
        return None, None
    return [DRY_HISTORY], TokenTexts([f"t{i}".encode() for i in range(size)], lambda data: [])


@dataclass(frozen=True)
class CaseResult:
    """One case's outcome."""

    name: str
    draws: int
    vocab: int
    support: int  # tokens with probability > 0
    bins: int
    statistic: float
    p_value: float
    max_abs_error: float  # largest |observed frequency - probability| over tokens


def chi_square(counts: np.ndarray, probs: np.ndarray) -> tuple[float, float, int]:
    """Pearson's chi-square of ``counts`` against ``probs``; returns (statistic, p, bins)."""
    from scipy.stats import chi2

    draws = counts.sum()
    if (counts[probs == 0] > 0).any():
        return float("inf"), 0.0, 0
    order = np.argsort(probs)
    expected, observed = probs[order] * draws, counts[order]
    observed, expected = observed[expected > 0], expected[expected > 0]
    pooled_obs, pooled_exp, acc_obs, acc_exp = [], [], 0.0, 0.0
    for obs, exp in zip(observed, expected, strict=True):
        acc_obs, acc_exp = acc_obs + obs, acc_exp + exp
        if acc_exp >= 5:
            pooled_obs.append(acc_obs)
            pooled_exp.append(acc_exp)
            acc_obs = acc_exp = 0.0
    if acc_exp > 0 and pooled_exp:  # leftovers join the last (largest) bin
        pooled_obs[-1] += acc_obs
        pooled_exp[-1] += acc_exp
    if len(pooled_exp) < 2:
        return 0.0, 1.0, len(pooled_exp)
    obs, exp = np.array(pooled_obs), np.array(pooled_exp)
    statistic = float(((obs - exp) ** 2 / exp).sum())
    return statistic, float(chi2.sf(statistic, len(exp) - 1)), len(exp)


def sample_counts(
    logits: np.ndarray,
    params: SamplingParams,
    draws: int,
    seed: int,
    rows: int = 250,
    on_progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Token counts of ``draws`` draws: ``rows`` independent streams, enough steps.

    Counts are added up step by step (memory does not grow with ``draws``); ``on_progress``
    gets the number of draws each step added.
    """
    seeded = SamplingParams(**{**_fields(params), "seed": seed})
    history, vocabulary = _dry_context(params, logits.size)
    keys, matchers = [(row,) for row in range(rows)], _matchers(params, rows)
    sampler = Sampler(seeded, keys, stats=False, vocabulary=vocabulary, constraints=matchers)
    batch = np.broadcast_to(logits, (rows, logits.size))
    histories = None if history is None else history * rows
    counts = np.zeros(logits.size, dtype=np.int64)
    for done in range(0, draws, rows):
        if _is_stateful(seeded):  # the state moves after each draw: fresh rows, first steps
            keys = [(done, row) for row in range(rows)]
            sampler = Sampler(seeded, row_keys=keys, stats=False)
        tokens = sampler.step(batch, history=histories)[0][: draws - done]
        counts += np.bincount(tokens, minlength=logits.size)
        if on_progress is not None:
            on_progress(len(tokens))
    return counts


def _is_stateful(params: SamplingParams) -> bool:
    """Whether the row's law moves from step to step (mirostat's μ, adaptive-p's average)."""
    return bool(params.mirostat) or "adaptive_p" in params.active_stages


def _fields(params: SamplingParams) -> dict:
    return {name: getattr(params, name) for name in params.__dataclass_fields__}


def check_request(draws: int, names: Sequence[str] | None = None) -> list[str]:
    """The case names to run, after checking ``draws`` and the names (before any work)."""
    if draws < 100:
        raise InvalidInputError(f"draws={draws} is too few: use at least 100")
    if draws > MAX_DRAWS:
        raise InvalidInputError(
            f"draws={draws} is too many: at most {MAX_DRAWS} per case (already minutes a case; "
            "20000 already detects a sampler off by a few percent)"
        )
    chosen = list(CASES) if names is None else list(names)
    unknown = [name for name in chosen if name not in CASES]
    if unknown:
        raise InvalidInputError(f"case {unknown[0]!r} is unknown: use one of {', '.join(CASES)}")
    return chosen


def run_cases(
    draws: int = 20_000,
    seed: int = 0,
    names: Sequence[str] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[CaseResult]:
    """Run the named cases (default: all of :data:`CASES`); ``on_progress`` gets draws made."""
    chosen = check_request(draws, names)
    results = []
    for name in chosen:
        logits, params = CASES[name]
        history, vocabulary = _dry_context(params, logits.size)
        matchers = _matchers(params, 1)
        state = None if matchers is None else {"grammar_matcher": matcher_array(matchers)}
        probs = distribution(logits, params, history, state, vocabulary).astype(np.float64)
        counts = sample_counts(logits, params, draws, seed, on_progress=on_progress)
        statistic, p_value, bins = chi_square(counts, probs)
        results.append(
            CaseResult(
                name=name,
                draws=draws,
                vocab=logits.size,
                support=int((probs > 0).sum()),
                bins=bins,
                statistic=statistic,
                p_value=p_value,
                max_abs_error=float(np.abs(counts / draws - probs).max()),
            )
        )
    return results


def format_results(results: Sequence[CaseResult], alpha: float) -> str:
    """One aligned line per case with its verdict at ``alpha``, and a closing count."""
    width = max(len(r.name) for r in results)
    lines = [
        f"{'case':<{width}}  {'V':>5} {'kept':>5} {'draws':>7} {'bins':>5} "
        f"{'chi2':>9} {'p-value':>8} {'max|f-p|':>9}  verdict"
    ]
    for r in results:
        verdict = "REJECTED" if r.p_value < alpha else "ok"
        lines.append(
            f"{r.name:<{width}}  {r.vocab:>5} {r.support:>5} {r.draws:>7} "
            f"{r.bins:>5} {r.statistic:>9.2f} {r.p_value:>8.4f} "
            f"{r.max_abs_error:>9.5f}  {verdict}"
        )
    passed = sum(r.p_value >= alpha for r in results)
    lines.append(
        f"\n{passed} of {len(results)} cases consistent with "
        f"distribution() at alpha={alpha:g} per case"
    )
    return "\n".join(lines)
