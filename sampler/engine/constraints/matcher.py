"""One row's walk through its grammar, over the source's own vocabulary.

The vocabulary is the source's: a GGUF's tokens as llama.cpp spells them
(``llguidance.llamacpp``, no download), or a transformers model's fast tokenizer
(``llguidance.hf``). The tokens that end a row (the source's EOS tokens) are the grammar's end:
once the grammar is complete they are allowed, and when nothing else may follow they are the
only tokens allowed, so the row ends with its next draw.

The mask is llguidance's with one correction. Where the grammar forces the next bytes (one
legal continuation, e.g. ``be`` after ``may`` in ``"maybe"``), llguidance allows only the
first token of the forced bytes' canonical tokenization (``be``), while llama.cpp's grammar
sampler allows every token that spells a prefix of them (``b`` too). Any such token is legal
(llguidance consumes it), so it is added back: the mask is then llama.cpp's
(tests/test_constraint_parity.py).

Special tokens are text, as in llama.cpp, which matches every token by its text: a control
token such as ``<|im_start|>`` is allowed where its text is (inside a JSON string, say), while
llguidance would never allow it. Such a token is allowed when the plain tokens that spell its
text are, and taking it takes them. The source's end tokens are the exception: they end the
grammar and nothing else. (llama.cpp also ends a grammar with its other end-of-generation
tokens, e.g. SmolLM2's ``<reponame>``; a row here ends only on the source's EOS tokens, so the
mask allows only those.)

A row rewound by a banned phrase (:mod:`sampler.generation.phrase_bans`) rolls its matcher back
by the steps it drops (:meth:`RowConstraint.rollback`). Each step's llguidance tokens are kept:
a spelled special token took several, a step past the grammar's end none. llguidance's own
``rollback`` takes them back; a grammar it cannot roll back (a Lark lexeme with
``max_tokens=`` or ``stop=``: llguidance refuses, and its matcher is then in error for good)
is walked again from its start over the kept tokens instead.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from sampler.engine.constraints.compile import compiled, import_llguidance
from sampler.errors import InvalidInputError

__all__ = ["RowConstraint", "constraint_state", "constraint_vocabulary", "row_constraints"]


class ConstraintVocabulary:
    """A source's vocabulary as the matcher reads it: llguidance's tokenizer, and each token's
    bytes (to find the tokens that spell a prefix of forced bytes)."""

    def __init__(
        self,
        tokenizer: Any,
        vocab_size: int,
        token_bytes: Sequence[bytes],
        special: dict[int, bytes],
        ends: frozenset[int],
    ) -> None:
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.by_bytes: dict[bytes, list[int]] = {}
        for token, data in enumerate(token_bytes):
            if data and token not in special:
                self.by_bytes.setdefault(data, []).append(token)
        self.longest = max((len(data) for data in self.by_bytes), default=0)
        # special tokens (not the end ones) as the plain tokens that spell their text
        self.spelled = {
            token: tokenizer.greedy_tokenize(text.decode("utf-8", "replace"))
            for token, text in special.items()
            if text and token not in ends
        }

    def spelling_prefixes(self, forced: bytes) -> list[int]:
        """The tokens whose bytes are a non-empty prefix of ``forced``."""
        found: list[int] = []
        for end in range(1, min(len(forced), self.longest) + 1):
            found += self.by_bytes.get(forced[:end], [])
        return found


def constraint_vocabulary(source: Any) -> ConstraintVocabulary:
    """The source's vocabulary for the matcher, made once per source (about 0.3 s for 49,152
    tokens). A source with neither a GGUF model nor a fast tokenizer gets a one-line error."""
    cached = getattr(source, "_constraint_vocabulary", None)
    if cached is not None:
        return cached
    llguidance = import_llguidance()
    eos = sorted(source.eos_token_ids)
    if hasattr(source, "llama") and hasattr(source, "model"):
        from llguidance.llamacpp import lltokenizer_from_vocab

        vocab = source.llama.llama_model_get_vocab(source.model)
        with warnings.catch_warnings():  # it calls llama_token_get_attr, deprecated, per token
            warnings.simplefilter("ignore", DeprecationWarning)
            tokenizer = lltokenizer_from_vocab(vocab, n_vocab=source.vocab_size, eos_token=eos)
    elif hasattr(source, "tokenizer"):
        from llguidance.hf import from_tokenizer

        try:
            tokenizer = from_tokenizer(source.tokenizer, n_vocab=source.vocab_size, eos_token=eos)
        except Exception as error:  # a slow (Python) tokenizer: llguidance needs a fast one
            raise InvalidInputError(
                f"a grammar needs the model's tokenizer as llguidance reads it, and "
                f"{source.name}'s cannot be read: {str(error).splitlines()[0]}"
            ) from None
    else:
        raise InvalidInputError(
            f"a grammar needs a model's own vocabulary, and {source.name} has none: use a GGUF "
            "or a transformers model"
        )
    del llguidance
    pieces = [tokenizer.decode_bytes([token]) for token in range(source.vocab_size)]
    special = {
        token: _special_text(source, token)
        for token in range(source.vocab_size)
        if tokenizer.is_special_token(token)
    }
    ends = frozenset(_end_tokens(source)) | frozenset(source.eos_token_ids)
    vocabulary = ConstraintVocabulary(tokenizer, source.vocab_size, pieces, special, ends)
    with contextlib.suppress(AttributeError):  # a slotted source: made again next time
        setattr(source, "_constraint_vocabulary", vocabulary)  # noqa: B010
    return vocabulary


def _special_text(source: Any, token: int) -> bytes:
    """A special token's text as the model writes it (``<|im_start|>``)."""
    text = getattr(source, "text", None)
    if hasattr(text, "token_bytes"):  # llama.cpp's own piece, special tokens rendered
        return text.token_bytes(token)
    return source.token_label(token).encode("utf-8")


def _end_tokens(source: Any) -> list[int]:
    """llama.cpp's end-of-generation tokens of a GGUF source (none for other sources)."""
    llama = getattr(source, "llama", None)
    if llama is None:
        return []
    vocab = llama.llama_model_get_vocab(source.model)
    return [t for t in range(source.vocab_size) if llama.llama_vocab_is_eog(vocab, t)]


class RowConstraint:
    """One row's matcher: which tokens the grammar allows now, and the step that takes one."""

    def __init__(self, vocabulary: ConstraintVocabulary, syntax: str, text: str) -> None:
        llguidance = import_llguidance()
        self.vocabulary = vocabulary
        self.matcher = llguidance.LLMatcher(
            vocabulary.tokenizer, compiled(syntax, text), log_level=0
        )
        if self.matcher.is_error():
            raise InvalidInputError(
                f"the {syntax} grammar is invalid for this vocabulary: "
                f"{self.matcher.get_error().splitlines()[0]}"
            )
        self._eos = np.array(sorted(vocabulary.tokenizer.eos_tokens), dtype=np.int64)
        self._start = self.matcher.deep_copy()  # walked again where rollback is refused
        self._steps: list[list[int]] = []  # per step taken, the llguidance tokens consumed

    def copy(self) -> RowConstraint:
        """An independent copy at the same point (the sampler's state before a step)."""
        twin = object.__new__(RowConstraint)
        twin.vocabulary, twin._eos, twin._start = self.vocabulary, self._eos, self._start
        twin.matcher = self.matcher.deep_copy()
        twin._steps = [list(step) for step in self._steps]
        return twin

    def allowed(self) -> np.ndarray:
        """``[V]`` bool: the tokens the grammar allows next. A finished grammar (or a row that
        went on past its end, as rows do in a batch once they stop) allows the EOS tokens."""
        size = self.vocabulary.vocab_size
        if self.matcher.is_stopped() or self.matcher.is_error():
            return self._only_eos(size)
        bits = np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8)
        mask = np.unpackbits(bits, bitorder="little")[:size].astype(bool)
        forced = self.matcher.compute_ff_bytes()
        if forced:
            mask[self.vocabulary.spelling_prefixes(forced)] = True
        for token, spelling in self.vocabulary.spelled.items():
            if spelling and self.matcher.validate_tokens(spelling) == len(spelling):
                mask[token] = True
        return mask if mask.any() else self._only_eos(size)

    def _only_eos(self, size: int) -> np.ndarray:
        mask = np.zeros(size, dtype=bool)
        mask[self._eos[self._eos < size]] = True
        return mask

    def advance(self, token: int) -> None:
        """Take ``token`` (drawn from :meth:`allowed`); past the grammar's end it is ignored."""
        consumed: list[int] = []
        if not (self.matcher.is_stopped() or self.matcher.is_error()):
            consumed = self.vocabulary.spelled.get(int(token)) or [int(token)]
            self.matcher.consume_tokens(consumed)
        self._steps.append(consumed)

    @property
    def steps(self) -> int:
        """How many tokens this matcher has been given (:meth:`advance` calls, net of
        :meth:`rollback`)."""
        return len(self._steps)

    def rollback(self, steps: int) -> None:
        """Take back the last ``steps`` tokens given to :meth:`advance`: the matcher is then
        where it was before them (its mask that of a fresh matcher given the tokens kept)."""
        if not 0 <= steps <= len(self._steps):
            raise ValueError(f"cannot roll back {steps} of {len(self._steps)} steps")
        if steps == 0:
            return
        dropped = self._steps[len(self._steps) - steps :]
        del self._steps[len(self._steps) - steps :]
        count = sum(len(step) for step in dropped)
        if count == 0 or self.matcher.rollback(count):
            return
        self.matcher = self._start.deep_copy()  # llguidance refused: walk the kept tokens
        self.matcher.consume_tokens([t for step in self._steps for t in step])


def row_constraints(source: Any, params: Sequence[Any]) -> list[RowConstraint | None] | None:
    """Per row, a fresh matcher for its constraint (``None`` where it has none); ``None`` when
    no row has one (the vocabulary is read only then)."""
    if not any(p.grammar for p in params):
        return None
    vocabulary = constraint_vocabulary(source)
    return [
        RowConstraint(vocabulary, p.grammar_syntax, p.grammar) if p.grammar else None
        for p in params
    ]


def constraint_state(
    source: Any, params: Any, written: Sequence[int] = ()
) -> dict[str, np.ndarray] | None:
    """The sampler state of one row's step: ``{"grammar_matcher": [matcher]}`` when ``params``
    has a constraint (for :func:`~sampler.engine.sampling.distribution`), else ``None``.

    The matcher has taken ``written``, the tokens the row wrote under its grammar before this
    step (none: the first step); a token the grammar did not allow where it was written gets a
    one-line error naming it and its position.
    """
    from sampler.engine.state import matcher_array

    matchers = row_constraints(source, [params])
    if matchers is None:
        return None
    matcher = matchers[0]
    for position, token in enumerate(written):
        if not matcher.allowed()[int(token)]:
            raise InvalidInputError(
                f"token {int(token)} ({source.token_label(int(token))!r}) at position "
                f"{position} of the written tokens is not allowed by the grammar there"
            )
        matcher.advance(int(token))
    return {"grammar_matcher": matcher_array(matchers)}
