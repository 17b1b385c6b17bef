"""DRY, "don't repeat yourself" (pi6am, 2024), as llama.cpp implements it.

A token that would extend a sequence already seen in the history is penalised by
``multiplier · base^(n - allowed_length)``, ``n`` the length of the longest such repeat (the
token itself not counted), when ``n >= allowed_length``. Sequence breakers (``"\\n"``, ``":"``,
...) cut repeats short: a repeat never reaches back past the most recent breaker, and a token
that is a breaker is never penalised.

Source: llama.cpp ``src/llama-sampler.cpp`` (``llama_sampler_dry_apply`` and
``get_overlapping_token_sequences``; ggml-org/llama.cpp 6f7f63ee, the same in the commit
0c1e570 that llama-cpp-python 0.3.36 bundles), a port of KoboldCpp's. Its rules, kept here:

* breakers are found in the vocabulary by text: every token whose text *contains* a breaker
  is a single-token breaker (401 tokens of SmolLM2 for the four defaults); a token whose text
  ends with a proper prefix of a breaker is the head of a multi-token breaker, whose tail is
  the tokenization of the rest (at most 20 tokens); breakers are cut to 40 bytes
  (:mod:`~sampler.engine.filters.dry_breakers` finds them, once per vocabulary and set; a row
  has at most 64 of them);
* the repeat limit is the distance back to the most recent breaker (its longest matching
  tail set apart); if that is below ``allowed_length`` nothing is penalised;
* ``allowed_length = 0`` penalises every token that followed any earlier position;
* the exponent is clamped at ``int(88.7228391 / ln base)`` (so ``base^exp`` stays finite in
  float32; the product with a multiplier above 1 may still reach infinity and ban the token).

One difference, on purpose: ``dry_penalty_last_n = -1`` means the whole history here (as
llama.cpp's ``-1`` did until its PR #26524 clamped negative windows to 0, which is off).
text-generation-webui's DRY differs (breakers are four exact token ids, repeats are capped at
50, a row whose last token is a breaker is skipped); docs/engine.md lists the differences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sampler.engine.candidates import Candidates
from sampler.engine.filters.dry_breakers import DEFAULT_BREAKERS, MAX_BREAKERS, TokenTexts

if TYPE_CHECKING:
    from sampler.engine.rows import RowParams

__all__ = [
    "DEFAULT_BREAKERS",
    "MAX_BREAKERS",
    "Repeats",
    "TokenTexts",
    "dry",
    "dry_penalties",
    "dry_repeats",
    "penalties_from",
    "repeat_lengths",
]

_FLOAT_MAX_LOG = 88.7228391  # ln of float32's largest value


def repeat_lengths(window: Sequence[int], limit: int) -> np.ndarray:
    """``[N]``: for each earlier end position ``N - 1 - k`` of the window, how long a suffix of
    the window also ends there (capped at ``limit``): llama.cpp's reverse Z-algorithm."""
    reverse = list(reversed(window))
    size = len(reverse)
    z = [0] * size
    left = right = 0
    for k in range(1, size):  # the Z-algorithm over the reversed window
        if k < right:
            z[k] = min(right - k, z[k - left])
        while k + z[k] < size and reverse[z[k]] == reverse[k + z[k]]:
            z[k] += 1
        if k + z[k] > right:
            left, right = k, k + z[k]
    lengths = np.zeros(size, dtype=np.int64)
    for k in range(1, size):
        lengths[size - 1 - k] = min(z[k], limit)
    return lengths


@dataclass(frozen=True)
class Repeats:
    """What DRY's penalties are made of, for one history and one set of breakers: the window's
    length, how far back a repeat may reach (``limit``), per token the longest repeat it would
    extend (any length), and the single-token breakers that are never penalised. The penalty
    settings (multiplier, base, allowed length) then give the penalties
    (:func:`penalties_from`); the page of ``sampler serve`` gets these and computes them."""

    window: int
    limit: int
    longest: dict[int, int]
    exempt: frozenset[int]


def dry_repeats(
    history: Sequence[int], restarts: dict[int, list[tuple[int, ...]]], last_n: int
) -> Repeats:
    """The :class:`Repeats` of one row's history (see the module)."""
    window = list(history) if last_n < 0 else list(history)[-last_n:] if last_n else []
    size = len(window)
    limit = size
    for back in range(size):  # the most recent breaker limits how far back a repeat reaches
        tails = restarts.get(window[size - 1 - back])
        if tails is None:
            continue
        matching = [
            len(tail)
            for tail in tails
            if len(tail) <= back
            and all(tail[o] == window[size - back + o] for o in range(len(tail)))
        ]
        if matching:
            limit = back - max(matching)
            break
    longest: dict[int, int] = {}
    if size > 1 and limit >= 0:
        lengths = repeat_lengths(window, limit)
        for end in range(size - 1):  # the token that followed each earlier repeat
            token = window[end + 1]
            longest[token] = max(longest.get(token, -1), int(lengths[end]))
    exempt = frozenset(t for t in longest if any(not tail for tail in restarts.get(t, ())))
    return Repeats(size, limit, longest, exempt)


def penalties_from(
    repeats: Repeats, multiplier: float, base: float, allowed_length: int
) -> tuple[dict[int, float], int]:
    """``({token: penalty}, longest repeat)`` from a row's :class:`Repeats`."""
    if multiplier == 0 or base < 1 or repeats.window <= allowed_length:
        return {}, 0
    if repeats.limit < allowed_length:
        return {}, 0
    longest = {t: n for t, n in repeats.longest.items() if n >= allowed_length}
    # float32 arithmetic as llama.cpp's: ln(base) in float, the clamp truncated to int
    base32 = float(np.float32(base))
    cap = int(np.float32(_FLOAT_MAX_LOG) / np.float32(math.log(base32))) if base32 > 1.000001 else 0
    penalties = {}
    for token, length in longest.items():
        if token in repeats.exempt:
            continue  # a single-token breaker is never penalised
        exponent = length - allowed_length
        if cap > 0 and exponent > cap:
            exponent = cap
        with np.errstate(over="ignore"):  # beyond float32, as in llama.cpp: the token is banned
            penalties[token] = float(np.float32(float(np.float32(multiplier)) * base32**exponent))
    return penalties, max(longest.values(), default=0)


def dry_penalties(
    history: Sequence[int],
    restarts: dict[int, list[tuple[int, ...]]],
    multiplier: float,
    base: float,
    allowed_length: int,
    last_n: int,
) -> tuple[dict[int, float], int]:
    """``({token: penalty}, longest repeat)`` for one row's history (see the module)."""
    if multiplier == 0 or base < 1:
        return {}, 0
    return penalties_from(dry_repeats(history, restarts, last_n), multiplier, base, allowed_length)


def dry(candidates: Candidates, rows: RowParams) -> Candidates:
    """Subtract each row's DRY penalties from its candidates' logits. Notes ``dry_match`` (the
    longest repeat a candidate would extend) and ``dry_penalty`` (the largest penalty)."""
    active = rows.on("dry_multiplier") & (rows["dry_penalty_last_n"] != 0)
    if not active.any():
        return candidates
    logits = candidates.logits.copy()
    match = np.where(active, 0.0, np.nan)
    largest = np.where(active, 0.0, np.nan)
    for row in np.flatnonzero(active):
        breakers = rows["dry_sequence_breakers"][row]
        restarts = _vocabulary(rows, breakers).restart_sequences(breakers) if breakers else {}
        penalties, match[row] = dry_penalties(
            rows.history[row] if rows.history is not None else (),
            restarts,
            rows["dry_multiplier"][row],
            rows["dry_base"][row],
            int(rows["dry_allowed_length"][row]),
            int(rows["dry_penalty_last_n"][row]),
        )
        if penalties:
            ids = candidates.ids[row] if candidates.ids is not None else None
            for token, penalty in penalties.items():
                columns = [token] if ids is None else np.flatnonzero(ids == token)
                for column in columns:
                    if column < logits.shape[1]:
                        logits[row, column] -= logits.dtype.type(penalty)
            largest[row] = max(penalties.values())
    return candidates.with_logits(logits).noted(dry_match=match, dry_penalty=largest)


def _vocabulary(rows: RowParams, breakers: tuple[str, ...]) -> TokenTexts:
    if rows.vocabulary is None:
        from sampler.errors import InvalidInputError

        raise InvalidInputError(
            f"DRY's sequence breakers {list(breakers)} are found in the model's vocabulary: "
            "pass vocabulary=sampler.sources.base.token_texts(source) "
            "(or dry_sequence_breakers=[] for none)"
        )
    return rows.vocabulary
