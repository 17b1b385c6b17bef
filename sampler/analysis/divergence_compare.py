"""Two settings, two models, or every preset, compared token by token along one text.

Teacher forcing as :mod:`sampler.analysis.teacher_forced` does it (:func:`forced_ids`); the
measures are :func:`sampler.analysis.divergence.law_divergence`'s.

Examples
--------
>>> from sampler import SamplingParams
>>> from sampler.sources.synthetic_spec import parse_synthetic
>>> source = parse_synthetic("synthetic:fixed?logits=3,1,0.2")
>>> result = divergence_text(source, "A B", SamplingParams(), SamplingParams(top_k=2))
>>> round(float(result.tv[0]), 4), float(result.kl_ab[0]), bool(result.kept_differ[0])
(0.0508, inf, True)
>>> round(float(result.kl_ba[0]), 4), int(result.kept_a[0]), int(result.kept_b[0])
(0.0522, 3, 2)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

from sampler.analysis.divergence import (
    Divergence,
    Progress,
    Side,
    check_vocabularies,
    describe,
    divergences,
)
from sampler.analysis.teacher_forced import forced_ids
from sampler.engine.params import SamplingParams
from sampler.engine.presets import PRESETS
from sampler.errors import InvalidInputError
from sampler.sources.base import LogitSource, use_chat

__all__ = [
    "divergence_text",
    "divergence_tokens",
    "missing_stages",
    "order_divergences",
]


def divergence_tokens(
    source: LogitSource,
    params_a: SamplingParams,
    params_b: SamplingParams,
    context: Sequence[int],
    targets: Sequence[int],
    source_b: LogitSource | None = None,
    context_b: Sequence[int] | None = None,
    progress: Progress | None = None,
) -> Divergence:
    """Settings A against settings B along token ids ``targets`` after ``context``.

    Parameters
    ----------
    source, params_a, params_b
        Side A's logit source, and each side's settings.
    context, targets
        The token ids before the first scored position, and the ids forced.
    source_b, context_b
        Side B's own source and context (default: A's). A second source must give every
        target the same token (label).
    progress
        As in :func:`~sampler.analysis.divergence.divergences`.

    Returns
    -------
    Divergence
    """
    other = source if source_b is None else source_b
    if other is not source:
        check_vocabularies([source, other])
        for token in targets:
            if source.token_label(token) != other.token_label(token):
                raise InvalidInputError(
                    f"token {token} is {source.token_label(token)!r} in {source.name} but "
                    f"{other.token_label(token)!r} in {other.name}: the models tokenize differently"
                )
    where = (f" on {source.name}", f" on {other.name}") if other is not source else ("", "")
    label_a, label_b = describe(params_a) + where[0], describe(params_b) + where[1]
    sides = [
        Side(source, params_a, tuple(context), label_a),
        Side(other, params_b, tuple(context if context_b is None else context_b), label_b),
    ]
    return divergences(sides, targets, [(0, 1)], progress)[0]


def divergence_text(
    source: LogitSource,
    text: str,
    params_a: SamplingParams,
    params_b: SamplingParams,
    prompt: str | None = None,
    raw: bool = False,
    source_b: LogitSource | None = None,
    progress: Progress | None = None,
) -> Divergence:
    """Settings A against settings B along ``text``, encoded by :func:`forced_ids`.

    Parameters
    ----------
    source, text, params_a, params_b
        Side A's source, the text forced, each side's settings.
    prompt, raw
        Score every token of ``text`` after ``prompt`` (chat template unless ``raw``).
    source_b
        Side B's source: it must split the text into the same ids; it encodes the prompt its
        own way, as a sweep on it would.
    progress
        As in :func:`~sampler.analysis.divergence.divergences`.

    Returns
    -------
    Divergence
    """
    context, targets = forced_ids(source, text, prompt, use_chat(source, raw))
    if source_b is None or source_b is source:
        return divergence_tokens(source, params_a, params_b, context, targets, progress=progress)
    check_vocabularies([source, source_b])  # before the encodings: the more basic mismatch
    context_b, targets_b = forced_ids(source_b, text, prompt, use_chat(source_b, raw))
    if (prompt is None and context_b != context) or targets_b != targets:
        raise InvalidInputError(
            f"the text tokenizes differently in {source.name} and {source_b.name}: "
            "token-by-token laws need the same tokens"
        )
    return divergence_tokens(
        source, params_a, params_b, context, targets, source_b, context_b, progress
    )


def order_divergences(
    source: LogitSource,
    params: SamplingParams,
    context: Sequence[int],
    targets: Sequence[int],
    orders: Sequence[str] = tuple(PRESETS),
    progress: Progress | None = None,
) -> list[Divergence]:
    """Every pair of preset ``orders`` with the same settings, along ``targets``.

    Parameters
    ----------
    source, params
        The source, and the settings each preset runs (their ``order`` is replaced).
    context, targets
        As in :func:`divergence_tokens`.
    orders
        Preset names; each must have every stage ``params`` switches on.
    progress
        As in :func:`~sampler.analysis.divergence.divergences`.

    Returns
    -------
    list of Divergence
        One per pair ``(orders[i], orders[j])``, ``i < j``; sides named by preset.

    Examples
    --------
    >>> from sampler.sources.synthetic_spec import parse_synthetic
    >>> source = parse_synthetic("synthetic:fixed?logits=3,2.5,1,0.2")
    >>> params = SamplingParams(temperature=2, min_p=0.2, top_k=3)
    >>> result = order_divergences(source, params, [0], [1], ["hf", "llama.cpp"])[0]
    >>> result.a, result.b, round(float(result.tv[0]), 4), bool(result.kept_differ[0])
    ('hf', 'llama.cpp', 0.1714, True)
    """
    sides = [Side(source, replace(params, order=name), tuple(context), name) for name in orders]
    pairs = list(itertools.combinations(range(len(sides)), 2))
    return divergences(sides, targets, pairs, progress)


def missing_stages(params: SamplingParams) -> dict[str, list[str]]:
    """Per preset, the stages ``params`` switches on that its chain lacks (usable if none).

    >>> missing_stages(SamplingParams(xtc_probability=0.5, order="webui"))["hf"]
    ['xtc']
    """
    active = [name for name in params.active_stages if name != "mirostat"]
    return {name: [s for s in active if s not in chain] for name, chain in PRESETS.items()}
