"""Seeded, deterministic synthetic logit sources chosen by a spec string (numpy only).

Spec grammar: ``synthetic:KIND[?KEY=VALUE[&KEY=VALUE...]]``, parsed and range-checked by
:mod:`sampler.sources.synthetic_spec`. The kinds and their defaults:

- ``fixed``: ``logits`` (default ``3,1,0.2``, the cheat sheet's), ``labels`` (default
  ``A,B,C,...``); the same logits after any context; the tokens are the labels.
- ``zipf``: ``vocab=1000``, ``exponent=1.1``, ``seed=0``; ``-exponent * log(rank)``, the ranks
  a seeded permutation; context-independent.
- ``gaussian``: ``vocab=1000``, ``scale=2.0``, ``seed=0``; ``Normal(0, scale)`` logits.
- ``dirichlet``: ``vocab=1000``, ``alpha=0.1``, ``seed=0``; ``log p``, ``p ~ Dirichlet(alpha)``
  clipped at 1e-30.
- ``markov``: ``vocab=500``, ``sharpness=2.0``, ``seed=0``; a bigram table: after word ``w``
  the words get ``sharpness * (c_w * Normal(0, 1) - 0.5 * log(rank))``, the seeded ranks making
  some words common everywhere and ``c_w`` (log-normal) making some contexts surer than others.
  The end token ``"."`` gets probability 1/12 after any word (sentences of about a dozen words
  whatever the sharpness) and the lowest logit of the row at the start.

Every kind has a context of :data:`SYNTHETIC_CONTEXT` (8192) tokens, prompt and generated
tokens together, as a model would: a longer request is refused before it runs.

gaussian, dirichlet and markov depend on the previous token only; each row is drawn when first
needed from PCG64 seeded with ``(seed, kind, previous token)``, so a ``vocab x vocab`` table is
never built and the logits are a pure function of (spec, context), whatever the batch. The empty
context is a fixed start state; for markov, so is a context ending in ``"."``.

Tokens other than fixed's are pronounceable pseudo-words of consonant-vowel syllables
(``kalo``, ``mesu``): token ``i`` is the same word in every kind and vocabulary size. markov
adds the end token ``"."`` as its last id, ``vocab - 1``, and its only EOS. Encoding splits on
whitespace; a word outside the vocabulary maps to ``zlib.crc32(word) % n`` (``n`` the number of
non-EOS tokens), stable across processes unlike ``hash``. Same numpy, same logits: numpy does not
promise identical ``Generator`` streams across releases, so the tests pin a few values.

Examples
--------
>>> from sampler.sources.synthetic_spec import parse_synthetic
>>> source = parse_synthetic("synthetic:markov?vocab=50&seed=1")
>>> source.name
'synthetic:markov?seed=1&sharpness=2.0&vocab=50'
>>> source.token_label(49), sorted(source.eos_token_ids)
('.', [49])
>>> logits, session = source.start([source.encode("", chat=False)])
>>> logits.shape, logits.dtype
((1, 50), dtype('float32'))
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from sampler.errors import InvalidInputError

__all__ = [
    "END_WORD",
    "SYNTHETIC_CONTEXT",
    "SYNTHETIC_KINDS",
    "SyntheticSession",
    "SyntheticSource",
]

PREFIX = "synthetic:"
SYNTHETIC_CONTEXT = 8192  # tokens of prompt + generation, like a model's context length
END_WORD = "."
SYNTHETIC_KINDS: dict[str, dict[str, Any]] = {
    "fixed": {"logits": None, "labels": None},
    "zipf": {"vocab": 1000, "exponent": 1.1, "seed": 0},
    "gaussian": {"vocab": 1000, "scale": 2.0, "seed": 0},
    "dirichlet": {"vocab": 1000, "alpha": 0.1, "seed": 0},
    "markov": {"vocab": 500, "sharpness": 2.0, "seed": 0},
}
_MIN_LOG_PROB = math.log(1e-30)
_END_PROBABILITY = 1 / 12
_PRIOR_EXPONENT, _CONFIDENCE_SPREAD = 0.5, 0.5
_START = -1
_CACHE_BYTES = 64 * 2**20

_CONSONANTS, _VOWELS = "bdfghjklmnprstvz", "aeiou"
_SYLLABLES = [c + v for c in _CONSONANTS for v in _VOWELS]
_SYLLABLE_INDEX = {s: i for i, s in enumerate(_SYLLABLES)}
# Words of 2, 3, then 4 syllables; inside a block an affine bijection scatters consecutive ids
# so that neighbouring tokens do not all start "baba", "babe", ...
_BLOCKS = [(n, len(_SYLLABLES) ** n) for n in (2, 3, 4)]
_SCATTER, _SHIFT = 2654435761, 7919  # odd and not a multiple of 5: invertible mod 80**n


def pseudo_word(index: int) -> str:
    """The ``index``-th pseudo-word: unique, pronounceable, lowercase.

    >>> [pseudo_word(i) for i in range(4)]
    ['gozu', 'teba', 'kobe', 'babi']
    >>> word_index(pseudo_word(123456))
    123456
    """
    for syllables, size in _BLOCKS:
        if index < size:
            code = (index * _SCATTER + _SHIFT) % size
            digits = [(code // len(_SYLLABLES) ** k) % len(_SYLLABLES) for k in range(syllables)]
            return "".join(_SYLLABLES[d] for d in reversed(digits))
        index -= size
    raise InvalidInputError(f"pseudo-word index {index} is beyond the largest vocabulary")


def word_index(word: str) -> int | None:
    """Inverse of :func:`pseudo_word`, or ``None`` for a string that is no pseudo-word."""
    pairs = [word[k : k + 2] for k in range(0, len(word), 2)]
    if any(p not in _SYLLABLE_INDEX for p in pairs):
        return None
    offset = 0
    for syllables, size in _BLOCKS:
        if len(pairs) == syllables:
            code = 0
            for pair in pairs:
                code = code * len(_SYLLABLES) + _SYLLABLE_INDEX[pair]
            return offset + (code - _SHIFT) * pow(_SCATTER, -1, size) % size
        offset += size
    return None


def _rng(params: dict[str, Any], kind: str, role: int, context: int) -> np.random.Generator:
    # The kind is salted in so that gaussian and dirichlet with one seed are unrelated.
    salt = zlib.crc32(kind.encode())
    return np.random.default_rng([params["seed"], salt, role, context + 1])


def _log_zipf_by_rank(params: dict[str, Any], kind: str, exponent: float) -> np.ndarray:
    ranks = _rng(params, kind, 0, _START).permutation(params["vocab"]) + 1
    return -exponent * np.log(ranks)


def _dirichlet_log_probs(rng: np.random.Generator, alpha: float, size: int) -> np.ndarray:
    # Gamma(alpha) = Gamma(alpha + 1) * U**(1/alpha), kept in log space and normalised before
    # the division by alpha, so tiny alphas neither underflow every p to 0 nor give NaN.
    scaled = alpha * np.log(rng.standard_gamma(alpha + 1.0, size)) + np.log1p(-rng.random(size))
    with np.errstate(over="ignore"):
        log_weights = (scaled - scaled.max()) / alpha
    log_probs = log_weights - np.log(np.exp(log_weights).sum())
    return np.maximum(log_probs, _MIN_LOG_PROB)


class SyntheticSource:
    """A :class:`~sampler.sources.base.LogitSource` built by :func:`parse_synthetic`."""

    # Nothing in a synthetic table needs a limit, but without one a huge max_new_tokens would
    # run for ever before its row could be committed; this is SmolLM2's context.
    context_limit: int | None = SYNTHETIC_CONTEXT
    is_chat: bool = False

    def __init__(self, kind: str, params: dict[str, Any], canonical_spec: str) -> None:
        self.kind = kind
        self.params = params
        self.name = self.fingerprint = canonical_spec
        self._labels: list[str] | None = params["labels"] if kind == "fixed" else None
        self.vocab_size: int = len(params["logits"]) if kind == "fixed" else params["vocab"]
        self.eos_token_ids: frozenset[int] = frozenset(
            {self.vocab_size - 1} if kind == "markov" else ()
        )
        self._label_ids = {w: i for i, w in enumerate(self._labels or [])}
        self._context_free = kind in ("fixed", "zipf")
        rows = max(1, _CACHE_BYTES // (4 * self.vocab_size))
        self._row = functools.lru_cache(maxsize=rows)(self._compute_row)

    def __repr__(self) -> str:
        return f"SyntheticSource({self.name!r})"

    @functools.cached_property
    def _markov_prior(self) -> np.ndarray:
        words = {**self.params, "vocab": self.vocab_size - 1}
        return _log_zipf_by_rank(words, self.kind, _PRIOR_EXPONENT)

    def _markov_row(self, rng: np.random.Generator, context: int) -> np.ndarray:
        confidence = math.exp(_CONFIDENCE_SPREAD * rng.standard_normal())
        noise = rng.standard_normal(self.vocab_size - 1)
        words = self.params["sharpness"] * (confidence * noise + self._markov_prior)
        if context == _START:
            # An empty sentence is no demo; "." is kept possible so no logit is -inf.
            return np.append(words, words.min())
        top = words.max()
        log_total = top + math.log(np.exp(words - top).sum())
        return np.append(words, log_total + math.log(_END_PROBABILITY / (1 - _END_PROBABILITY)))

    def _compute_row(self, context: int) -> np.ndarray:
        params, size = self.params, self.vocab_size
        if self.kind == "fixed":
            row = np.asarray(params["logits"])
        elif self.kind == "zipf":
            row = _log_zipf_by_rank(params, self.kind, params["exponent"])
        else:
            rng = _rng(params, self.kind, 1, context)
            if self.kind == "gaussian":
                row = params["scale"] * rng.standard_normal(size)
            elif self.kind == "dirichlet":
                row = _dirichlet_log_probs(rng, params["alpha"], size)
            else:
                row = self._markov_row(rng, context)
        row = row.astype(np.float32)
        row.flags.writeable = False
        return row

    def _context_of(self, previous: int) -> int:
        if self._context_free or previous in self.eos_token_ids:
            return _START
        return previous

    def _logits_after(self, previous: np.ndarray) -> np.ndarray:
        rows = [self._row(self._context_of(int(p))) for p in previous]
        return np.stack(rows) if rows else np.empty((0, self.vocab_size), np.float32)

    def _check_id(self, token_id: Any, what: str) -> int:
        if isinstance(token_id, bool) or not isinstance(token_id, int | np.integer):
            raise InvalidInputError(f"{what} {token_id!r} is not an integer token id")
        if not 0 <= token_id < self.vocab_size:
            raise InvalidInputError(
                f"{what} {int(token_id)} is out of range: allowed 0 to {self.vocab_size - 1}"
            )
        return int(token_id)

    def token_label(self, token_id: int) -> str:
        """The label (fixed), pseudo-word, or ``"."`` for markov's end token."""
        token_id = self._check_id(token_id, "token id")
        if self._labels is not None:
            return self._labels[token_id]
        return END_WORD if token_id in self.eos_token_ids else pseudo_word(token_id)

    def encode(self, prompt: str, chat: bool = False) -> list[int]:
        """Ids of the whitespace-separated words; ``chat`` is ignored (there is no template)."""
        return [self._word_id(word) for word in prompt.split()]

    def _word_id(self, word: str) -> int:
        if self._labels is not None and word in self._label_ids:
            return self._label_ids[word]
        if word == END_WORD and self.eos_token_ids:
            return self.vocab_size - 1
        ordinary = self.vocab_size - len(self.eos_token_ids)
        found = word_index(word) if self._labels is None else None
        if found is not None and found < ordinary:
            return found
        return zlib.crc32(word.encode()) % ordinary

    def decode(self, token_ids: Sequence[int]) -> str:
        """The words joined by single spaces (markov's ``"."`` is kept: it is punctuation)."""
        return " ".join(self.token_label(t) for t in token_ids)

    def start(self, prompts: Sequence[Sequence[int]]) -> tuple[np.ndarray, SyntheticSession]:
        """Logits ``[B, V]`` float32 for the token after each prompt, and the session."""
        checked = [[self._check_id(t, "prompt token id") for t in prompt] for prompt in prompts]
        previous = np.array([ids[-1] if ids else _START for ids in checked], dtype=np.int64)
        return self._logits_after(previous), SyntheticSession(self, previous)


class SyntheticSession:
    """One batch being extended: only each row's last token matters to synthetic sources."""

    def __init__(self, source: SyntheticSource, previous: np.ndarray) -> None:
        self._source = source
        self._previous = previous
        self._restart: set[int] = set()

    def rewind(self, row: int, position: int) -> None:
        """Nothing is cached: the next token fed is the whole context, unless every token was
        dropped from an empty prompt (``position`` -1), which returns the row to the start."""
        if position < 0:
            self._restart.add(row)

    def advance(self, tokens: np.ndarray) -> np.ndarray:
        """Append one token per row (``[B]`` ints); return the next logits ``[B, V]`` float32."""
        ids = np.asarray(tokens)
        if ids.shape != self._previous.shape:
            raise InvalidInputError(
                f"advance got tokens of shape {ids.shape} for a batch of "
                f"{self._previous.size} rows: give exactly one token per row"
            )
        self._previous = np.array(
            [self._source._check_id(t, "token id") for t in ids.tolist()], dtype=np.int64
        )
        for row in self._restart:
            self._previous[row] = _START
        self._restart.clear()
        return self._source._logits_after(self._previous)
