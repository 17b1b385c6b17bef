"""Phrase bans with backtracking ("anti-slop"), KoboldCpp's rules, for the generation loop.

A row's newest tokens are watched as text. When they complete a banned phrase (matched
case-insensitively, both sides through ``str.lower``), the row is rewound to the token where
the phrase began, and that token is banned at that position; the row then draws there again.
The rules, as KoboldCpp's ``gpttype_adapter.cpp`` has them:

- **Window.** Only a row's last ``W`` tokens are watched, ``W`` = the most tokens any phrase
  takes (tokenized alone, lower-cased) + 3. Older text is final (KoboldCpp has streamed it):
  a phrase spread over more than ``W`` tokens is not caught, and a rewind never goes further
  back than ``W`` tokens. Streamed text (``on_text``) is held back by ``W + 1`` tokens.
- **Where a phrase began.** The shortest run of trailing tokens whose text holds the phrase;
  its first token is removed with everything after it and banned at its position.
- **Bans persist per position.** A ban holds for that position (the row's ``n``-th generated
  token) until the row ends, whatever the tokens before it become; bans accumulate.
- **Budget.** Every draw counts towards ``max_new_tokens``, the rewound ones too (KoboldCpp
  decrements its remaining tokens per sampled token and never gives them back): a row that
  rewinds often ends with fewer tokens, finish reason ``length``. This is the rewind limit;
  there is no other.
- **First phrase wins.** Phrases are checked in the order given; one rewind per draw.

The banned token's logit is set to ``-inf`` (KoboldCpp gives it the row's lowest logit minus 8,
which no sampler keeps in practice); if every token allowed at a position is banned there, the
bans are not applied and the row draws as if unbanned (the phrase comes back, is rewound again
and uses the budget up) rather than stopping the batch.

Beside a grammar constraint, a rewound row's matcher is rolled back by the dropped tokens
(:meth:`~sampler.engine.constraints.matcher.RowConstraint.rollback`), so its next mask is the
grammar's after the kept tokens (KoboldCpp does not roll its grammar back: its rewind leaves
the grammar past the dropped tokens). The bans are applied to the logits before the chain, and
the grammar's mask in the chain. "Allowed" above then means allowed by the grammar too: when
every token the grammar allows at a position is banned there, the bans are not applied and the
row draws from the grammar's mask alone.

The random stream is not rewound: the draw after a rewind takes the row's next uniform. The
uniform that drew the banned token lay in that token's slice of the CDF; drawing again with it
would pick a neighbour of the banned token by id, not a draw from the law with the token
removed. A fresh number keeps each draw exact, and the row stays reproducible because its
rewinds fall on the same draws alone, in any batch and after a resume (a row's draws depend
only on its own tokens). Stateful stages (mirostat's μ, adaptive-p's average) keep what the
rewound draws taught them, as KoboldCpp's do; penalties and DRY see the rewound history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sampler.errors import InvalidInputError
from sampler.files import read_lines
from sampler.generation.generation_row import Completion
from sampler.messages import check_text, shown
from sampler.sources.base import LogitSource, text_tokens

__all__ = [
    "MAX_PHRASES",
    "MAX_PHRASE_CHARS",
    "WINDOW_MARGIN",
    "PhraseGuard",
    "check_phrases",
    "read_phrase_file",
]

# The antislop project's lists hold a few hundred phrases; every watched row scans each one
# at each step, so the list is bounded.
MAX_PHRASES = 1000
# The window (and the text held back while streaming) grows with the longest phrase.
MAX_PHRASE_CHARS = 200
WINDOW_MARGIN = 3  # KoboldCpp's "extra buffer" of tokens beyond the longest phrase


def check_phrases(phrases: Sequence[str], origin: str = "ban phrase") -> tuple[str, ...]:
    """``phrases`` as a tuple, each a non-empty string of valid Unicode, at most
    :data:`MAX_PHRASE_CHARS` characters, at most :data:`MAX_PHRASES` of them."""
    if len(phrases) > MAX_PHRASES:
        raise InvalidInputError(
            f"{len(phrases)} banned phrases are too many: give at most {MAX_PHRASES}"
        )
    for number, phrase in enumerate(phrases, start=1):
        if not isinstance(phrase, str):
            raise InvalidInputError(f"{origin} {number} is {shown(phrase)}: give a string")
        if not phrase:
            raise InvalidInputError(f"{origin} {number} is empty: give some text to ban")
        if len(phrase) > MAX_PHRASE_CHARS:
            raise InvalidInputError(
                f"{origin} {number} ({shown(phrase)}) has {len(phrase)} characters: "
                f"give at most {MAX_PHRASE_CHARS}"
            )
        check_text(f"{origin} {number}", phrase)
    return tuple(phrases)


def read_phrase_file(path: str | Path) -> tuple[str, ...]:
    """Phrases from a file, one a line, exactly as written (the line end removed); blank
    lines are skipped."""
    file = Path(path)
    lines = read_lines(file, "banned phrases")
    phrases = [line for line in lines if line.strip()]
    if not phrases:
        raise InvalidInputError(f"banned phrases file {str(file)!r} has no phrases")
    return check_phrases(phrases, origin=f"{file}: phrase")


def _window_text(source: LogitSource, ids: Sequence[int]) -> str:
    """The text of some tokens: their pieces joined (KoboldCpp's way) where the source has
    them, else its decode."""
    gguf = getattr(source, "text", None)
    if hasattr(gguf, "token_bytes"):
        return b"".join(gguf.token_bytes(t) for t in ids).decode("utf-8", "replace")
    return source.decode(ids)


@dataclass
class _RowBans:
    """One row's bans (generated-token position -> banned ids) and its rewinds."""

    bans: dict[int, list[int]] = field(default_factory=dict)
    rewinds: list[dict[str, Any]] = field(default_factory=list)


class PhraseGuard:
    """Watches one batch's rows for banned phrases and rewinds them (see the module).

    The loop calls :meth:`mask` on each step's logits, :meth:`check` after a row takes a
    token, and :meth:`feed` on the tokens it is about to give the session. ``constraints``
    are the rows' grammar matchers, the very objects the sampler advances (``None`` without a
    grammar): a rewind rolls the row's one back.
    """

    def __init__(
        self,
        source: LogitSource,
        completions: Sequence[Completion],
        phrases: Sequence[str],
        constraints: Sequence[Any | None] | None = None,
    ) -> None:
        self._source = source
        self._completions = completions
        self._constraints = constraints or [None] * len(completions)
        self._phrases = [(phrase, phrase.lower()) for phrase in phrases]
        self.window = WINDOW_MARGIN + max(len(text_tokens(source, p)) for _, p in self._phrases)
        self._rows = [_RowBans() for _ in completions]
        self._rewound: dict[int, int] = {}  # row -> tokens it keeps, this step
        for row, completion in zip(self._rows, completions, strict=True):
            completion.rewinds = row.rewinds
            completion.__dict__["_held_tokens"] = self.window + 1

    def mask(self, logits: np.ndarray, running: np.ndarray) -> np.ndarray:
        """``logits`` with each running row's banned tokens at its position set to ``-inf``
        (a copy, only when some row has a ban there)."""
        out = logits
        for index in running:
            banned = self._rows[index].bans.get(len(self._completions[index].token_ids))
            if not banned:
                continue
            allowed = np.isfinite(out[index])
            matcher = self._constraints[index]
            if matcher is not None:
                allowed &= matcher.allowed()
            allowed[banned] = False
            if not allowed.any():
                continue  # every allowed token is banned: draw unbanned (see the module)
            if out is logits:
                out = logits.copy()
            out[index, banned] = -np.inf
        return out

    def check(self, index: int, step: int) -> bool:
        """After row ``index`` took a token at draw ``step``: rewind it if its window now
        holds a banned phrase. Returns whether it was rewound."""
        completion = self._completions[index]
        ids = completion.token_ids
        window = ids[-self.window :]
        text = _window_text(self._source, window).lower()
        for phrase, lowered in self._phrases:
            if lowered not in text:
                continue
            taken = next(
                k
                for k in range(1, len(window) + 1)
                if lowered in _window_text(self._source, window[-k:]).lower()
            )
            start = len(ids) - taken
            row = self._rows[index]
            row.bans.setdefault(start, []).append(ids[start])
            row.rewinds.append(
                {
                    "step": step,
                    "phrase": phrase,
                    "position": start,
                    "token": ids[start],
                    "dropped": taken,
                }
            )
            _truncate(self._source, completion, start)
            if self._constraints[index] is not None:
                self._constraints[index].rollback(taken)
            self._rewound[index] = start
            return True
        return False

    def feed(self, session: Any, tokens: np.ndarray, filler: int) -> np.ndarray:
        """The tokens to advance ``session`` with: a row rewound at this step forgets its
        dropped positions and is fed its last kept token again, so the next logits are
        those after its kept tokens."""
        if not self._rewound:
            return tokens
        tokens = np.array(tokens)
        for index, kept in self._rewound.items():
            sequence = self._completions[index].prompt_ids + self._completions[index].token_ids
            assert len(sequence) == len(self._completions[index].prompt_ids) + kept
            session.rewind(index, len(sequence) - 1)
            tokens[index] = sequence[-1] if sequence else filler
        self._rewound.clear()
        return tokens


def _truncate(source: LogitSource, completion: Completion, keep: int) -> None:
    """Cut ``completion`` back to its first ``keep`` generated tokens: ids, steps, logprobs,
    and the text the loop keeps current (what was streamed is never taken back: it is held
    back by more tokens than a rewind drops)."""
    del completion.token_ids[keep:]
    del completion.steps[keep:]
    if completion.logprobs is not None:
        del completion.logprobs["content"][keep:]
    state = completion.__dict__.get("_text_state")
    if state is not None:
        completion.text = source.decode(completion.token_ids)
        state.read = len(completion.token_ids)
        state.prefix = max(state.read - 1, 0)
        state.emitted = min(state.emitted, len(completion.text))
