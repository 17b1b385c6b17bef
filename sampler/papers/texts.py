"""Human-written text every Python install carries, and teacher forcing over a batch of it.

The text is CPython's ``pydoc_data.topics`` (the reference manual's topics that ``help()``
shows, written by people): of each topic its prose only, the heading and the indented code and
grammar blocks left out, the wrapped lines joined. Documents are the independent units
(clusters) of every interval computed on them.

Examples
--------
>>> prose("Title\\n*****\\n\\nSome words\\nwrapped.\\n\\n   >>> code()\\n\\nMore.")
'Some words wrapped.\\n\\nMore.'
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sampler.entropy import softmax_entropy
from sampler.errors import InvalidInputError
from sampler.softmax import log_softmax
from sampler.sources.base import LogitSource

__all__ = [
    "HUMAN_TEXT",
    "Document",
    "ForcedInformation",
    "forced_information",
    "forced_steps",
    "human_documents",
    "prose",
]

HUMAN_TEXT = "CPython's pydoc_data.topics (the reference manual's help() topics), prose only"


@dataclass(frozen=True)
class Document:
    """One human text: its name, the first token (the context) and the tokens scored."""

    name: str
    context: list[int]
    targets: list[int]


def prose(topic: str) -> str:
    """A topic's prose paragraphs: no heading (a line followed by a rule of ``*``, ``=`` or
    ``-``), no indented block (code, grammar), wrapped lines joined."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", topic):
        lines = block.split("\n")
        if len(lines) >= 2 and re.fullmatch(r"[*=\-^]+", lines[1].strip()):
            lines = lines[2:]  # a heading and its rule
        if not lines or lines[0].startswith((" ", "\t")):
            continue
        text = " ".join(line.strip() for line in lines if line.strip())
        if text:
            paragraphs.append(text)
    return "\n\n".join(paragraphs)


def human_documents(source: LogitSource, count: int, tokens: int) -> list[Document]:
    """``count`` documents of ``tokens`` scored tokens each, tokenized by ``source``.

    Topics are taken in name order, skipping those whose prose is shorter than ``tokens + 1``
    tokens, so the same options give the same documents on every machine with the same
    CPython minor version.
    """
    from pydoc_data.topics import topics

    documents = []
    for name in sorted(topics):
        ids = source.encode(prose(topics[name]), chat=False)
        if len(ids) > tokens:
            documents.append(Document(name, ids[:1], ids[1 : tokens + 1]))
        if len(documents) == count:
            return documents
    raise InvalidInputError(
        f"only {len(documents)} pydoc topics have {tokens + 1} tokens of prose: ask for fewer "
        "documents or tokens"
    )


def forced_steps(
    source: LogitSource, documents: list[Document]
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Teacher forcing over all ``documents`` at once (one batch, one pass per position).

    Yields per position ``(position, logits [G, V] float64, true next tokens [G], active
    [G] bool)``; a document shorter than the longest is inactive past its end (its logits
    there follow a filler token and mean nothing).
    """
    length = max(len(d.targets) for d in documents)
    targets = np.zeros((len(documents), length), dtype=np.int64)
    active = np.zeros((len(documents), length), dtype=bool)
    for row, document in enumerate(documents):
        targets[row, : len(document.targets)] = document.targets
        active[row, : len(document.targets)] = True
    logits, session = source.start([d.context for d in documents])
    for position in range(length):
        yield position, logits.astype(np.float64), targets[:, position], active[:, position]
        if position + 1 < length:
            logits = session.advance(targets[:, position])


@dataclass(frozen=True)
class ForcedInformation:
    """Per document and position ``[G, T]`` (NaN past a document's end), at τ = 1: the
    entropy of the model's distribution, the surprisal of the true next token, and the
    surprisal of the most likely token (what greedy decoding would pick there)."""

    entropy: np.ndarray
    surprisal: np.ndarray
    best_surprisal: np.ndarray


def forced_information(source: LogitSource, documents: list[Document]) -> ForcedInformation:
    """:func:`forced_steps` reduced to entropies and surprisals, with the functions the
    teacher-forced analysis uses (:mod:`sampler.analysis.teacher_forced`)."""
    length = max(len(d.targets) for d in documents)
    out = [np.full((len(documents), length), np.nan) for _ in range(3)]
    rows = np.arange(len(documents))
    for position, logits, targets, active in forced_steps(source, documents):
        log_probs = log_softmax(logits, 1.0)
        values = (softmax_entropy(logits, 1.0), -log_probs[rows, targets], -log_probs.max(axis=1))
        for array, value in zip(out, values, strict=True):
            array[active, position] = value[active]
    return ForcedInformation(*out)
