"""Teacher-forced analysis: the exact entropy of every next-token distribution of a fixed text.

The text is fed token by token (no sampling); at each position the model's logits are read
and, for every temperature of a list, the exact entropy of ``softmax(logits / τ)`` and the
surprisal of the token that actually comes next are computed.

What it is exact for: at the first generated position (the distribution right after a
prompt, encoded as a sweep encodes it) the entropy at τ is exactly the expected
``entropy_final`` of a sweep's first step at τ with no filters. Later positions follow *this*
text, not the texts a sweep samples, so they give the entropy along one path, not the
sweep's average.

Examples
--------
>>> from sampler.sources.synthetic_spec import parse_synthetic
>>> source = parse_synthetic("synthetic:fixed?logits=3,1,0.2")
>>> result = analyze_tokens(source, [0], [0, 1], [1.0])
>>> round(float(result.entropy[0, 0]), 6)
0.547737
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sampler.entropy import softmax_entropy
from sampler.errors import InvalidInputError
from sampler.softmax import log_softmax
from sampler.sources.base import LogitSource
from sampler.tables import aligned_table

__all__ = ["Analysis", "analyze_text", "analyze_tokens", "forced_ids", "format_analysis"]


@dataclass(frozen=True)
class Analysis:
    """Entropy and surprisal ``[positions, temperatures]`` of a teacher-forced text."""

    labels: list[str]  # the predicted token at each position
    temperatures: list[float]
    entropy: np.ndarray
    surprisal: np.ndarray

    def mean_entropy(self) -> np.ndarray:
        return self.entropy.mean(axis=0)

    def mean_surprisal(self) -> np.ndarray:
        return self.surprisal.mean(axis=0)


def analyze_tokens(
    source: LogitSource,
    context: Sequence[int],
    targets: Sequence[int],
    temperatures: Sequence[float],
) -> Analysis:
    """Entropies of the distributions that predict each of ``targets`` after ``context``."""
    if not context:
        raise InvalidInputError("the context is empty: teacher forcing needs a first token")
    if not targets:
        raise InvalidInputError("there is nothing to analyse: the text has a single token")
    temps = np.asarray(temperatures, dtype=np.float64)
    logits, session = source.start([list(context)])
    entropy = np.empty((len(targets), len(temps)))
    surprisal = np.empty_like(entropy)
    for position, token in enumerate(targets):
        row = np.broadcast_to(logits[0].astype(np.float64), (len(temps), logits.shape[1]))
        entropy[position] = softmax_entropy(row, temps)
        surprisal[position] = -log_softmax(row, temps)[:, token]
        if position + 1 < len(targets):
            logits = session.advance(np.array([token]))
    return Analysis(
        [source.token_label(t) for t in targets], [float(t) for t in temps], entropy, surprisal
    )


def forced_ids(
    source: LogitSource, text: str, prompt: str | None = None, chat: bool = False
) -> tuple[list[int], list[int]]:
    """``(context, targets)``: the token ids teacher forcing starts from, and those it scores.

    Without a prompt the text is encoded raw and its first token is the context (it is not
    scored). With a prompt, the context is the prompt encoded as a sweep encodes it (through
    the chat template when ``chat``), the text is tokenized on its own, and every token of it
    is scored, the first at the position a sweep's first step samples from.
    """
    if prompt is None:
        ids = source.encode(text, chat=False)
        if len(ids) < 2:
            raise InvalidInputError(f"the text {text!r} has {len(ids)} token(s): give at least two")
        return ids[:1], ids[1:]
    return source.encode(prompt, chat), source.encode(text, chat=False)


def analyze_text(
    source: LogitSource,
    text: str,
    temperatures: Sequence[float],
    prompt: str | None = None,
    chat: bool = False,
) -> Analysis:
    """Teacher-forced analysis of ``text``, alone or as the continuation of ``prompt``
    (encoded by :func:`forced_ids`)."""
    return analyze_tokens(source, *forced_ids(source, text, prompt, chat), temperatures)


def format_analysis(result: Analysis, per_token: bool = True) -> str:
    """Mean entropy and surprisal per temperature, then (optionally) every position."""
    header = ["τ", "mean entropy (nats)", "mean surprisal (nats)"]
    body = [
        [f"{t:g}", f"{h:.4f}", f"{s:.4f}"]
        for t, h, s in zip(
            result.temperatures, result.mean_entropy(), result.mean_surprisal(), strict=True
        )
    ]
    lines = aligned_table(header, body)
    if per_token:
        header = ["pos", "next token", *(f"H τ={t:g}" for t in result.temperatures)]
        body = [
            [str(i), repr(label), *(f"{h:.3f}" for h in result.entropy[i])]
            for i, label in enumerate(result.labels)
        ]
        lines += ["", *aligned_table(header, body)]
    return "\n".join(lines)
