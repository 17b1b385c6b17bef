"""DRY's sequence breakers: how many a row may have, and where they are in a vocabulary.

llama.cpp (``llama_sampler_init_dry``, ``src/llama-sampler.cpp``) finds each breaker in the
vocabulary by text: every token whose text *contains* the breaker is a single-token breaker; a
token whose text ends with a proper prefix of the breaker is the head of a multi-token breaker,
whose tail is the tokenization of the rest (at most ``MAX_SEQ_LEN`` = 20 tokens); a breaker is
cut to ``MAX_CHAR_LEN`` = 40 bytes. Neither llama.cpp nor text-generation-webui limits how many
breakers a request names; here a row has at most :data:`MAX_BREAKERS`, so that no request can
hold the model for long (issue 18: 4,500 breakers held a server for minutes).

Cost. llama.cpp, and this module before, walks the whole vocabulary in a loop for each breaker
(~45 ms a breaker on SmolLM2's 49,152 tokens, in Python). Here the token texts are joined once
per vocabulary into one byte string, ``\\xff`` after each text: that byte never occurs in UTF-8,
so a breaker (or a prefix of one) never matches across two tokens. A breaker is then one
``bytes.find`` scan (in C) for the tokens containing it and one regular-expression scan for the
tokens ending with a proper prefix of it, plus one Python step per token found: 64 breakers of
40 random characters took 0.2 s on SmolLM2, against ~45 ms a breaker before.

Examples
--------
>>> vocab = TokenTexts([b"a", b"b:", b"###", b" Response", b"#"], lambda data: {
...     b" Response": [3], b"## Response": [2, 3], b"# Response": [4, 3]}[data])
>>> vocab.restart_sequences((":", "### Response"))
{1: [()], 2: [(3,), (4, 3), (2, 3)], 4: [(2, 3)]}
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sampler.errors import InvalidInputError
from sampler.messages import shown

__all__ = [
    "DEFAULT_BREAKERS",
    "MAX_BREAKERS",
    "MAX_BREAKER_BYTES",
    "MAX_TAIL_TOKENS",
    "TokenTexts",
    "breakers_allowed",
]

DEFAULT_BREAKERS = ("\n", ":", '"', "*")
# 16 times the default four: SillyTavern's and KoboldCpp's presets name a handful. At 64 breakers
# of 40 bytes the lookup stays well under a second on SmolLM2 (tests/test_dry.py measures none:
# the bound is what makes a request's work finite, whatever the machine).
MAX_BREAKERS = 64
MAX_BREAKER_BYTES = 40  # llama.cpp's MAX_CHAR_LEN: longer breakers are cut, as there
MAX_TAIL_TOKENS = 20  # llama.cpp's MAX_SEQ_LEN
_SEPARATOR = b"\xff"  # never in UTF-8 text: a breaker's match stays inside one token's text
_CACHED_SETS = 16  # sets of breakers whose lookup a vocabulary keeps (a server sees many)

Restarts = dict[int, list[tuple[int, ...]]]


def breakers_allowed(breakers: tuple[str, ...]) -> bool:
    """Whether a row may have these breakers: at most :data:`MAX_BREAKERS` of them (the stage
    table checks each is a non-empty string of valid Unicode)."""
    return len(breakers) <= MAX_BREAKERS


@dataclass
class TokenTexts:
    """A vocabulary as DRY reads it: each token's text as bytes (special tokens as their text)
    and a tokenizer of bytes (no special tokens added or parsed)."""

    texts: Sequence[bytes]
    tokenize: Callable[[bytes], list[int]]
    _restarts: dict[tuple[str, ...], Restarts] = field(default_factory=dict, repr=False)
    _joined: tuple[bytes, list[int], list[int]] | None = field(default=None, repr=False)

    def restart_sequences(self, breakers: tuple[str, ...]) -> Restarts:
        """``{head token: [tail, ...]}`` for ``breakers`` (the last few sets are kept).

        An empty tail marks a single-token breaker.
        """
        if breakers not in self._restarts:
            if not breakers_allowed(breakers):  # SamplingParams refuses these first
                raise InvalidInputError(
                    f"{len(breakers)} sequence breakers: at most {MAX_BREAKERS}"
                )
            if len(self._restarts) >= _CACHED_SETS:
                del self._restarts[next(iter(self._restarts))]  # the oldest
            self._restarts[breakers] = self._lookup(breakers)
        return self._restarts[breakers]

    def _lookup(self, breakers: tuple[str, ...]) -> Restarts:
        heads: Restarts = {}
        known: dict[int, set[tuple[int, ...]]] = {}  # each head's tails, to skip repeats fast
        seen: set[bytes] = set()
        for breaker in breakers:
            try:
                text = breaker.encode("utf-8")[:MAX_BREAKER_BYTES]
            except UnicodeEncodeError:  # SamplingParams refuses these first
                raise InvalidInputError(f"breaker {shown(breaker)} is not valid Unicode") from None
            if text in seen:
                continue  # the same breaker again adds nothing
            seen.add(text)
            containing = set(self._containing(text))
            for token in sorted(containing):
                heads.setdefault(token, []).append(())
            borders = _borders(text)
            rests: dict[int, tuple[int, ...]] = {}  # the tail after each prefix, tokenized once
            for token, size in self._longest_endings(text).items():
                if token in containing:
                    continue  # a single-token breaker already
                tails, tails_known = heads.setdefault(token, []), known.setdefault(token, set())
                # the text ends with this prefix and with each of its borders: longest first,
                # llama.cpp's order (by position in the token's text)
                while size:
                    if size not in rests:
                        rests[size] = tuple(self.tokenize(text[size:])[:MAX_TAIL_TOKENS])
                    if rests[size] not in tails_known:
                        tails.append(rests[size])
                        tails_known.add(rests[size])
                    size = borders[size - 1]
        return heads

    def _index(self) -> tuple[bytes, list[int], list[int]]:
        """The texts joined (each followed by ``\\xff``), each text's start and end in it."""
        if self._joined is None:
            words = list(self.texts)
            starts, ends, position = [], [], 0
            for word in words:
                starts.append(position)
                ends.append(position + len(word))
                position += len(word) + 1
            self._joined = (_SEPARATOR.join([*words, b""]), starts, ends)
        return self._joined

    def _containing(self, text: bytes) -> list[int]:
        """The tokens whose text contains ``text`` (valid UTF-8: no match spans two texts)."""
        joined, starts, ends = self._index()
        found = []
        position = joined.find(text)
        while position != -1:
            token = bisect.bisect_right(starts, position) - 1
            found.append(token)
            position = joined.find(text, ends[token] + 1)  # on to the next token's text
        return found

    def _longest_endings(self, text: bytes) -> dict[int, int]:
        """``{token: n}``: the tokens whose text ends with a proper prefix of ``text``, ``n``
        the longest such prefix's length (one regular-expression scan: the leftmost match in
        a token's text is its longest ending; a match must end at the separator, not at a
        ``\\xff`` byte of a token's own text)."""
        if len(text) < 2:
            return {}
        joined, starts, ends = self._index()
        nested = b""
        for byte in reversed(text[1:-1]):  # text[0] (text[1] (text[2] ...)?)? then \xff
            nested = b"(?:" + re.escape(bytes([byte])) + nested + b")?"
        pattern = re.compile(re.escape(text[:1]) + nested + re.escape(_SEPARATOR))
        found = {}
        for match in pattern.finditer(joined):
            token = bisect.bisect_right(starts, match.start()) - 1
            if match.end() - 1 == ends[token]:
                found[token] = match.end() - 1 - match.start()
        return found


def _borders(text: bytes) -> list[int]:
    """KMP's prefix function: ``[i]`` is the longest proper prefix of ``text[: i + 1]`` that
    is also its suffix (so a text ending with ``text[:n]`` also ends with ``text[:borders[n-1]]``
    and so on down to 0)."""
    borders = [0] * len(text)
    for i in range(1, len(text)):
        k = borders[i - 1]
        while k and text[i] != text[k]:
            k = borders[k - 1]
        borders[i] = k + (text[i] == text[k])
    return borders
