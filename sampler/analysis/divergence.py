"""Teacher-forced divergence: how far apart two samplers' next-token laws are along one text.

A fixed text is fed token by token (no sampling). At each position every side's exact law
``distribution(logits, params, history=context so far)`` is computed, and each pair of sides
is compared: KL both ways (nats), total variation ``TV = ½ Σ |p − q|``, the probability that
the two draw the same token under the best shared coupling (``1 − TV``), whether their kept
sets differ, their kept counts and entropies. Sides differ in settings, in chain order, or in
model (two sources over the same tokens). Text encoding follows
:mod:`sampler.analysis.teacher_forced`: a text alone is encoded raw and its first token is
context; after a prompt (encoded as a sweep encodes it) every text token is scored.

Each law is held as float64 log-probabilities (:mod:`sampler.analysis.divergence_laws`), so
a low temperature's tiny probabilities never underflow into a false ``inf``. KL is ``inf``
exactly where one side keeps a token the other's chain dropped (a kept set that is not inside
the other's): it is kept as ``inf``, never clipped, and so is its mean.

The comparisons of two settings, two models or every preset along a text are in
:mod:`sampler.analysis.divergence_compare`; this module holds the measures and the
per-position loop they share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from sampler.analysis.divergence_laws import law_divergence, log_entropy, log_law
from sampler.engine.constraints import shown_value
from sampler.engine.constraints.matcher import row_constraints
from sampler.engine.params import SamplingParams
from sampler.engine.presets import PRESETS
from sampler.engine.stages import switched_on
from sampler.engine.state import matcher_array
from sampler.errors import InvalidInputError
from sampler.sources.base import LogitSource, dry_vocabulary

# progress(done, total): positions forced so far, of all
Progress = Callable[[int, int], None]

__all__ = [
    "Divergence",
    "Progress",
    "Side",
    "check_forcible",
    "check_vocabularies",
    "describe",
    "divergences",
    "law_divergence",
]


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a logit source, its settings, the context before the text."""

    source: LogitSource
    params: SamplingParams
    context: tuple[int, ...]
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or describe(self.params)


@dataclass(frozen=True)
class Divergence:
    """Side A against side B at every position of a text (arrays ``[positions]``)."""

    a: str
    b: str
    labels: list[str]  # the forced (next) token at each position
    entropy_a: np.ndarray
    entropy_b: np.ndarray
    kl_ab: np.ndarray  # KL(A ‖ B), nats; inf where A keeps a token B's chain dropped
    kl_ba: np.ndarray
    tv: np.ndarray
    kept_a: np.ndarray
    kept_b: np.ndarray
    kept_differ: np.ndarray

    @property
    def same_token(self) -> np.ndarray:
        """P(A and B draw the same token) under the maximal coupling: ``1 − TV``."""
        return 1.0 - self.tv

    def means(self) -> dict[str, float | int]:
        """Means over the text (a KL mean is ``inf`` if any position is), and counts."""
        columns = ("entropy_a", "entropy_b", "kl_ab", "kl_ba", "tv", "same_token")
        return {name: float(np.mean(getattr(self, name))) for name in columns} | {
            "positions": len(self.labels),
            "infinite_kl_ab": int(np.isinf(self.kl_ab).sum()),
            "infinite_kl_ba": int(np.isinf(self.kl_ba).sum()),
            "kept_differ_count": int(self.kept_differ.sum()),
        }


def check_forcible(params: SamplingParams) -> None:
    """Refuse settings whose law along a fixed text is not defined (mirostat)."""
    if params.mirostat:
        raise InvalidInputError(
            f"mirostat={params.mirostat} cannot be teacher-forced: its μ follows its own "
            "draws, so its law along a fixed text is not defined; switch mirostat off"
        )


def check_vocabularies(sources: Sequence[LogitSource]) -> None:
    if len({source.vocab_size for source in sources}) > 1:
        names = ", ".join(sorted({f"{s.name} ({s.vocab_size} tokens)" for s in sources}))
        raise InvalidInputError(
            f"the models' vocabularies differ in size ({names}): token-by-token laws can only "
            "be compared over one vocabulary"
        )


def _laws(sides: Sequence[Side], targets: Sequence[int]) -> Iterator[np.ndarray]:
    """Per position, every side's law ``[sides, V]`` as float64 log-probabilities."""
    # Sides with the same source and context share one forward pass: only their chains differ.
    groups: dict[tuple[int, tuple[int, ...]], list[int]] = {}
    for index, side in enumerate(sides):
        groups.setdefault((id(side.source), side.context), []).append(index)
    runs = []
    for (_, context), members in groups.items():
        if not context:
            raise InvalidInputError("the context is empty: teacher forcing needs a first token")
        logits, session = sides[members[0]].source.start([list(context)])
        runs.append([members, list(context), logits, session])
    # a constrained side's matcher follows the forced text (None on a free side)
    matchers = [(row_constraints(side.source, [side.params]) or [None])[0] for side in sides]
    for position, token in enumerate(targets):
        laws = np.empty((len(sides), sides[0].source.vocab_size))
        for members, history, logits, _ in runs:
            # the source's own logits (float32 for a model): the law a draw there follows
            source, params = sides[members[0]].source, [sides[m].params for m in members]
            held = [matchers[m] for m in members]
            laws[members] = log_law(
                np.repeat(logits[:1], len(members), axis=0),
                params,
                history=[history] * len(members),
                vocabulary=dry_vocabulary(source, params),
                state=None if not any(held) else {"grammar_matcher": matcher_array(held)},
            )
        yield laws
        _follow(sides, matchers, position, int(token))
        if position + 1 < len(targets):
            for run in runs:
                run[1] = [*run[1], int(token)]
                run[2] = run[3].advance(np.array([token]))


def _follow(sides: Sequence[Side], matchers: list, position: int, token: int) -> None:
    """Each constrained side's matcher takes the forced ``token``; a token its grammar does not
    allow is an error (the side's law is defined only along text its grammar allows)."""
    for side, matcher in zip(sides, matchers, strict=True):
        if matcher is None:
            continue
        if not matcher.allowed()[token]:
            label = side.source.token_label(token)
            raise InvalidInputError(
                f"the text leaves side {side.name}'s grammar at token {position} ({label!r}): "
                "a constrained law is defined only along text the grammar allows"
            )
        matcher.advance(token)


def divergences(
    sides: Sequence[Side],
    targets: Sequence[int],
    pairs: Sequence[tuple[int, int]],
    progress: Progress | None = None,
) -> list[Divergence]:
    """Force ``targets`` after each side's context; compare the sides of every pair.

    Parameters
    ----------
    sides
        The sides; those sharing a source object and a context share its forward passes.
        Their sources must have one vocabulary size; mirostat is refused.
    targets
        The token ids forced one by one; each position's law predicts one of them.
    pairs
        ``(a, b)`` indices into ``sides``.
    progress
        Called as ``progress(done, total)`` after each forced position (``total`` =
        ``len(targets)``): each position costs one model step per distinct source and context.

    Returns
    -------
    list of Divergence
        One per pair, in the order of ``pairs``.

    Examples
    --------
    >>> from sampler.sources.synthetic_spec import parse_synthetic
    >>> source = parse_synthetic("synthetic:fixed?logits=3,1,0.2")
    >>> sides = [Side(source, SamplingParams(temperature=t), (0,)) for t in (0.5, 1.0, 2.0)]
    >>> [round(float(d.tv[0]), 4) for d in divergences(sides, [1], [(0, 1), (0, 2)])]
    [0.1424, 0.3591]
    """
    if not targets:
        raise InvalidInputError("there is nothing to compare: no token to force (empty text)")
    for side in sides:
        check_forcible(side.params)
    check_vocabularies([side.source for side in sides])
    first = np.array([a for a, _ in pairs])
    second = np.array([b for _, b in pairs])
    steps = []
    for done, laws in enumerate(_laws(sides, targets), start=1):
        steps.append(law_divergence(laws[first], laws[second]) | {"entropy": log_entropy(laws)})
        if progress is not None:
            progress(done, len(targets))
    stacked = {key: np.stack([step[key] for step in steps]) for key in steps[0]}
    entropies = stacked.pop("entropy")
    labels = [sides[0].source.token_label(int(t)) for t in targets]
    return [
        Divergence(
            a=sides[a].name,
            b=sides[b].name,
            labels=labels,
            entropy_a=entropies[:, a],
            entropy_b=entropies[:, b],
            **{key: values[:, column] for key, values in stacked.items()},
        )
        for column, (a, b) in enumerate(pairs)
    ]


def describe(params: SamplingParams) -> str:
    """The settings that matter: order, temperature, and each setting not at its "off" value.

    >>> describe(SamplingParams(temperature=0.7, top_k=3, order="vllm"))
    'order=vllm temperature=0.7 top_k=3'
    """
    named = [name for name, stages in PRESETS.items() if stages == tuple(params.order)]
    parts = [f"order={named[0] if named else ','.join(params.order)}"]
    parts.append(f"temperature={params.temperature:g}")
    parts += [
        f"{name}={value:g}" if isinstance(value, float) else f"{name}={shown_value(name, value)}"
        for name, value in switched_on(params.settings()).items()
    ]
    if params.mode != "sample":
        parts.append(f"mode={params.mode}")
    if params.min_tokens_to_keep != 1:
        parts.append(f"min_tokens_to_keep={params.min_tokens_to_keep}")
    return " ".join(parts)
