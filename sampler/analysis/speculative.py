"""Speculative sampling (Leviathan et al. 2023, arXiv 2211.17192; Chen et al. 2023, arXiv
2302.01318): a cheap draft law ``q`` proposes tokens, the target law ``p`` accepts or replaces
them, and the tokens that come out follow ``p`` exactly.

A drafted token ``x ~ q`` is accepted with probability ``min(1, p(x) / q(x))``; on rejection a
token is drawn from the residual ``max(p - q, 0)`` normalised. The chance that a draft is
accepted is therefore ``Σ_x q(x) min(1, p(x)/q(x)) = Σ_x min(p(x), q(x)) = 1 - TV(p, q)``:
:func:`acceptance`, computed in float64 from log-probabilities (a low temperature's tiny
probabilities stay exact: ``min`` of two logs, then one ``exp`` per token).

A law is a function of the context (a tuple of token ids) to float64 log-probabilities
``[V]``, ``-inf`` where a token cannot be drawn (:data:`Law`; :func:`source_law` makes one from
a logit source and its settings). :func:`speculative_block` runs one round of ``k`` drafts;
:func:`speculative_generate` runs rounds until ``max_new`` tokens. In a round, draft ``i`` is
drawn and checked before draft ``i + 1`` is drawn: the check of draft ``i`` uses nothing that
comes after it, so the law of the output (and of every acceptance) is the same as drafting all
``k`` first, as an engine does to verify them in one target pass; here it spares a simulator
the laws of drafts a rejection would throw away.

Examples
--------
Two laws over three tokens; they share ``min`` mass 0.3 + 0.2 + 0.1 = 0.6:

>>> log_p, log_q = np.log([0.5, 0.2, 0.3]), np.log([0.3, 0.6, 0.1])
>>> round(float(acceptance(log_p, log_q)), 12)
0.6
>>> np.round(np.exp(residual_law(log_p, log_q)), 6).tolist()  # max(p - q, 0) = .2, 0, .2
[0.5, 0.0, 0.5]
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import numpy as np

from sampler.analysis.divergence import check_forcible
from sampler.analysis.divergence_laws import log_law
from sampler.engine.params import SamplingParams
from sampler.sources.base import LogitSource, dry_vocabulary

__all__ = [
    "Law",
    "SpeculativeRun",
    "acceptance",
    "acceptance_z",
    "context_logits",
    "draw",
    "expected_tokens_per_round",
    "residual_law",
    "source_law",
    "speculative_block",
    "speculative_generate",
]

Law = Callable[[tuple[int, ...]], np.ndarray]


def acceptance(log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """``Σ min(p, q)`` over the last axis: the chance a draft from ``q`` is accepted for ``p``.

    Equal to ``1 - TV(p, q)``; 1 for equal laws, 0 for laws with disjoint supports.
    """
    log_p, log_q = np.asarray(log_p, np.float64), np.asarray(log_q, np.float64)
    return np.exp(np.minimum(log_p, log_q)).sum(axis=-1)


def residual_law(log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """Log of ``max(p - q, 0)`` normalised: where a rejected draft is redrawn from.

    When ``p`` nowhere exceeds ``q`` (equal laws up to rounding), a rejection cannot happen
    in exact arithmetic; should rounding cause one, the target law itself is returned.
    """
    log_p, log_q = np.asarray(log_p, np.float64), np.asarray(log_q, np.float64)
    excess = np.maximum(np.exp(log_p) - np.exp(log_q), 0.0)
    total = excess.sum()
    if not total > 0:
        return log_p
    with np.errstate(divide="ignore"):  # log 0 = -inf where q covers p
        return np.log(excess / total)


def draw(log_law_row: np.ndarray, rng: np.random.Generator) -> int:
    """One token from a law given as log-probabilities (inverse CDF, one uniform number)."""
    weights = np.exp(log_law_row - np.max(log_law_row))
    cumulative = np.cumsum(weights)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return min(index, len(weights) - 1)


@dataclass
class SpeculativeRun:
    """What speculative sampling produced and how often the target accepted the draft."""

    tokens: list[int] = field(default_factory=list)
    rounds: int = 0  # target passes: one per round of drafts
    checked: int = 0  # drafts the target judged
    accepted: int = 0
    # Σ α and Σ α(1 - α) over the judged drafts, α = acceptance(p, q) at each one's context
    expected: float = 0.0
    variance: float = 0.0

    def add(self, other: SpeculativeRun) -> None:
        """Fold another run's tokens and counts into this one."""
        self.tokens += other.tokens
        self.rounds += other.rounds
        self.checked += other.checked
        self.accepted += other.accepted
        self.expected += other.expected
        self.variance += other.variance


def speculative_block(
    target: Law,
    draft: Law,
    context: Sequence[int],
    k: int,
    rng: np.random.Generator,
    limit: int | None = None,
) -> SpeculativeRun:
    """One round: up to ``k`` drafts from ``draft``, judged against ``target``.

    Returns the tokens the round emits: the accepted drafts, then either a token from the
    residual (at the first rejection) or, when every draft was accepted, one more from the
    target's next law. At most ``limit`` tokens (default ``k + 1``).
    """
    limit = k + 1 if limit is None else limit
    run = SpeculativeRun(rounds=1)
    for _ in range(min(k, limit)):
        here = (*context, *run.tokens)
        log_p, log_q = target(here), draft(here)
        alpha = float(acceptance(log_p, log_q))
        run.checked += 1
        run.expected += alpha
        run.variance += alpha * (1 - alpha)
        token = draw(log_q, rng)
        # accept with probability min(1, p/q): log u < log p - log q (always when p >= q)
        if math.log1p(-rng.random()) < log_p[token] - log_q[token]:
            run.tokens.append(token)
            run.accepted += 1
            continue
        run.tokens.append(draw(residual_law(log_p, log_q), rng))
        return run
    if len(run.tokens) < limit:
        run.tokens.append(draw(target((*context, *run.tokens)), rng))
    return run


def speculative_generate(
    target: Law,
    draft: Law,
    context: Sequence[int],
    max_new: int,
    k: int,
    rng: np.random.Generator,
    stop_tokens: Collection[int] = (),
) -> SpeculativeRun:
    """Rounds of :func:`speculative_block` until ``max_new`` tokens or a stop token (kept)."""
    if k < 1 or max_new < 1:
        raise ValueError(f"k={k} and max_new={max_new} must both be at least 1")
    run = SpeculativeRun()
    while len(run.tokens) < max_new:
        block = speculative_block(
            target, draft, (*context, *run.tokens), k, rng, max_new - len(run.tokens)
        )
        stops = [i for i, token in enumerate(block.tokens) if token in stop_tokens]
        if stops:
            del block.tokens[stops[0] + 1 :]
        run.add(block)
        if stops:
            break
    return run


def acceptance_z(run: SpeculativeRun) -> float:
    """How far the accepted count is from the exact laws' expectation, in standard errors.

    Each judged draft is accepted with probability ``α`` of its own context, so
    ``(accepted - Σ α) / √(Σ α(1 - α))`` is approximately standard normal when the sampler
    is right (a sum of independent Bernoulli deviations, given the contexts).
    """
    if run.variance <= 0:
        return 0.0 if run.accepted == round(run.expected) else math.inf
    return (run.accepted - run.expected) / math.sqrt(run.variance)


def expected_tokens_per_round(alpha: float, k: int) -> float:
    """Leviathan et al.'s ``(1 - α^{k+1}) / (1 - α)``: tokens per target pass when every
    draft is accepted with the same chance ``α``.

    >>> expected_tokens_per_round(0.5, 3), expected_tokens_per_round(1.0, 3)
    (1.875, 4.0)
    """
    if alpha >= 1:
        return float(k + 1)
    return (1 - alpha ** (k + 1)) / (1 - alpha)


def context_logits(
    source: LogitSource, remember: int = 128
) -> Callable[[tuple[int, ...]], np.ndarray]:
    """``source``'s next-token logits ``[1, V]`` after a context, the last ``remember`` kept.

    Each new context costs one forward pass over it (the source's ``start``). Laws of several
    settings on one model share one of these, so a context is run through the model once.
    """
    memo: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()

    def logits(context: tuple[int, ...]) -> np.ndarray:
        if context in memo:
            memo.move_to_end(context)
        else:
            memo[context] = source.start([list(context)])[0][:1]
            if len(memo) > remember:
                memo.popitem(last=False)
        return memo[context]

    return logits


def source_law(
    source: LogitSource,
    params: SamplingParams,
    remember: int = 128,
    logits: Callable[[tuple[int, ...]], np.ndarray] | None = None,
) -> Law:
    """The law a draw from ``source`` under ``params`` follows after a context.

    Penalties see the context as their history. The last ``remember`` contexts' laws are kept
    (8 bytes a token each: 50 MB for SmolLM2's 49,152 tokens at the default), since a round
    asks the draft and the target about the same contexts and repeated runs from one prompt
    share their first contexts. ``logits`` (:func:`context_logits`) may be shared with
    another law on the same source. Mirostat is refused: its cut follows its own past
    draws, so its law after a context is not defined.
    """
    check_forcible(params)
    logits = context_logits(source, remember) if logits is None else logits
    memo: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()
    vocabulary = dry_vocabulary(source, [params])

    def law(context: tuple[int, ...]) -> np.ndarray:
        if context in memo:
            memo.move_to_end(context)
            return memo[context]
        memo[context] = log_law(
            logits(context), [params], history=[list(context)], vocabulary=vocabulary
        )[0]
        if len(memo) > remember:
            memo.popitem(last=False)
        return memo[context]

    return law
