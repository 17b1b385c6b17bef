"""llama.cpp's grammar resampling: draw without the mask; only if that token is illegal, draw
again from the chain with the mask.

llama.cpp's common sampler keeps its grammar out of the chain. ``common_sampler_sample``
(common/sampling.cpp, ``grammar_first=false``, what llama-cli and llama-server pass) runs the
chain on the raw logits and draws; it asks the grammar about that one token; only when the
grammar rejects it does it reset the logits, apply the grammar, run the whole chain again and
draw again. With ``q`` the chain's law without the mask, ``r`` its law after the mask (the
row's order with the grammar where it stands: first under the llama.cpp preset, as
llama.cpp applies it) and ``L`` the legal tokens, the token's law is the mixture

    P(t) = q(t)·[t ∈ L] + (Σ_{u ∉ L} q(u))·r(t).

When the chain only reshapes (bias, penalties, temperature), ``r`` is ``q`` restricted to
``L`` and renormalised and ``P = r``: this is rejection sampling. When it truncates or draws
by chance (top-k, top-p, min-p, XTC's coin), ``P`` differs from masking first: a legal token
the chain would cut after the mask can be drawn in the first pass, and a legal token's mass
counts twice (docs/constraints.md measures how far).

A row resamples when :attr:`SamplingParams.resamples` (``grammar_mode``; ``"auto"`` under the
llama.cpp preset). Stateful stages in a chain run twice: adaptive-p keeps what the pass that
drew saw (llama.cpp's ``adaptive_p_apply`` stores the pending token and its prior in each
pass, and ``accept`` takes the last one's); mirostat is refused beside resampling
(:class:`SamplingParams`), because llama.cpp moves μ inside ``mirostat_apply`` in both passes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sampler.engine.candidates import Candidates
from sampler.engine.chain import GroupResult, run_group
from sampler.engine.filters.adaptive_p import chosen_prior
from sampler.engine.filters.grammar import RESAMPLED_NOTE, row_matchers
from sampler.engine.final_distribution import FinalDistribution
from sampler.engine.params import SamplingParams
from sampler.engine.rows import RowParams
from sampler.engine.stats import StepStats, step_stats

__all__ = [
    "ResampledDraw",
    "legal_masks",
    "resampled_draw",
    "resampled_log_law",
    "resampled_rows",
    "without_mask",
]


def without_mask(params: SamplingParams) -> SamplingParams:
    """The row's first pass: its chain with the grammar off."""
    return replace(params, grammar="")


def legal_masks(state: Mapping[str, Any] | None, rows: np.ndarray) -> np.ndarray:
    """``[len(rows), V]`` bool: the tokens each row's matcher allows now."""
    matchers = row_matchers(state or {}, rows)
    return np.stack([matchers[row].allowed() for row in rows])


def resampled_log_law(
    log_first: np.ndarray, log_second: np.ndarray, legal: np.ndarray
) -> np.ndarray:
    """``log P`` of ``P = q·[legal] + (Σ_illegal q)·r`` over the last axis, from the float64
    log-laws ``log q`` (``log_first``) and ``log r`` (``log_second``). The rejected mass is
    summed over the illegal tokens themselves, not taken as ``1 − Σ_legal q``, so that it stays
    exact when it is tiny."""
    accepted = np.where(legal, log_first, -np.inf)
    rejected = np.logaddexp.reduce(np.where(legal, -np.inf, log_first), axis=-1)
    return np.logaddexp(accepted, rejected[..., None] + log_second)


def resampled_rows(
    law_of: Callable[[list[SamplingParams]], np.ndarray],
    params: Sequence[SamplingParams],
    state: Mapping[str, Any] | None,
    second: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The rows that resample, and their log-laws as llama.cpp draws them.

    ``second`` is each row's float64 log-law ``[B, V]`` with its mask where its order puts it;
    ``law_of(params)`` gives the same for other params, and is called once, with the
    resampling rows' grammar off, for ``q``. Whatever ``law_of`` mixes itself (XTC's coin) it
    mixes in each pass, as llama.cpp's XTC draws a coin in each pass.
    """
    params = list(params)
    rows = np.flatnonzero([p.resamples for p in params])
    if rows.size == 0:
        return rows, second[rows]
    first = law_of([without_mask(p) if p.resamples else p for p in params])
    return rows, resampled_log_law(first[rows], second[rows], legal_masks(state, rows))


def _log_softmax(final: FinalDistribution) -> np.ndarray:
    logits = final.to_dense_logits().astype(np.float64)
    peak = logits.max(axis=1, keepdims=True)
    return logits - peak - np.log(np.exp(logits - peak).sum(axis=1, keepdims=True))


@dataclass(frozen=True)
class ResampledDraw:
    """One resampling group's step: its tokens, what the state update reads, its stats."""

    tokens: np.ndarray
    probability: np.ndarray  # of the token in the pass that drew it (mirostat's input)
    prior: np.ndarray  # adaptive-p's prior of the token in the pass that drew it
    stats: StepStats | None


def resampled_draw(
    raw: np.ndarray,
    rows: RowParams,
    second_rows: RowParams,
    stages: Sequence[str],
    members: np.ndarray,
    uniforms: np.ndarray,
    peak: np.ndarray,
    with_stats: bool,
) -> ResampledDraw:
    """Draw for the rows ``members`` (all resampling) as ``common_sampler_sample`` does.

    ``uniforms`` is ``[2, B]``, the step's number for each pass. The first pass runs
    ``stages`` without the grammar on ``rows`` and draws at ``uniforms[0]``; a row whose
    token its matcher refuses takes the second pass's token, ``stages`` as they are on
    ``second_rows`` (the same rows with the step's second XTC coin), drawn at
    ``uniforms[1]``. The second pass always runs: its law is part of the step's statistics,
    which are those of the mixture ``P`` the token follows (its entropy, top probability,
    kept tokens, KL to the base law, the token's surprisal under it). A greedy row's token
    is the masked argmax either way: the first pass takes the argmax, which stands when
    legal (then it is also the best legal token), and when illegal the second pass takes
    the best legal token.
    """
    first = run_group(raw, rows, tuple(s for s in stages if s != "grammar"), members)
    columns = first.final.draw(uniforms[0][members])
    tokens = first.final.token_ids(columns)
    legal = legal_masks(rows.state, members)
    accepted = legal[np.arange(len(members)), tokens]
    second = run_group(raw, second_rows, stages, members)
    second_columns = second.final.draw(uniforms[1][members])
    second_tokens = second.final.token_ids(second_columns)
    chosen = np.where(accepted, tokens, second_tokens)
    probability = np.where(
        accepted,
        first.final.chosen_probability(columns),
        second.final.chosen_probability(second_columns),
    )
    prior = np.where(
        accepted, chosen_prior(first.notes, tokens), chosen_prior(second.notes, second_tokens)
    )
    if not with_stats:
        return ResampledDraw(chosen, probability, prior, None)
    law = resampled_log_law(_log_softmax(first.final), _log_softmax(second.final), legal)
    mixture = FinalDistribution.from_candidates(Candidates.dense(law), first.rows)
    telemetry = {**_notes_of_the_drawing_pass(first, second, accepted), **first.rows.state}
    # greedy and hardmax rows keep only their maxima, compacted: the token's column there
    columns = chosen if mixture.ids is None else np.argmax(mixture.ids == chosen[:, None], axis=1)
    stats = step_stats(
        first.raw, peak[members], first.tempered, mixture, columns, chosen, telemetry
    )
    return ResampledDraw(chosen, probability, prior, stats)


def _notes_of_the_drawing_pass(
    first: GroupResult, second: GroupResult, accepted: np.ndarray
) -> dict[str, np.ndarray]:
    """Each stage's note from the pass that drew the row's token (the grammar's, which only
    the second pass has, from it), and whether the row resampled."""
    notes = dict(first.notes)
    for name, value in second.notes.items():
        if name in first.notes and value.ndim == 1:
            notes[name] = np.where(accepted, first.notes[name], value)
        else:
            notes[name] = value
    notes[RESAMPLED_NOTE] = np.where(accepted, 0.0, 1.0)
    return notes
