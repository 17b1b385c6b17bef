"""The records an experiment of the reproduction set fills in, and what it receives.

An :class:`Experiment` names a claim of the literature (in one sentence of our words, with its
:class:`Reference`) and a ``run`` function. ``run(options, source)`` returns an
:class:`Outcome`: the :class:`Finding` s (each an :class:`Estimate` with its 95 % interval over
clusters, and a :data:`Verdict`), tables, figures and notes. :mod:`sampler.papers.writer`
turns an outcome into ``report.md`` (beside its PNGs), ``report.html`` and ``result.json``.

Examples
--------
>>> estimate = Estimate(0.8, 0.5, 1.1, clusters=12, unit="tokens")
>>> verdict_above(estimate), verdict_below(estimate), verdict_within(estimate, -2, 2)
('reproduced', 'not reproduced', 'reproduced')
>>> overall_verdict(["reproduced", "not significant"])
'not significant'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sampler.report.bootstrap import MIN_PROMPTS
from sampler.sources import DEFAULT_MODEL

if TYPE_CHECKING:
    from sampler.sources.base import LogitSource

__all__ = [
    "VERDICTS",
    "Estimate",
    "Experiment",
    "Figure",
    "Finding",
    "Options",
    "Outcome",
    "Reference",
    "Table",
    "Verdict",
    "overall_verdict",
    "verdict_above",
    "verdict_below",
    "verdict_within",
]

Verdict = Literal["reproduced", "not reproduced", "not significant"]
VERDICTS: tuple[Verdict, ...] = ("reproduced", "not reproduced", "not significant")


@dataclass(frozen=True)
class Reference:
    """Where a claim comes from: ``Reference("Tang et al.", 2024, "Top-nσ: ...", "2411.07641")``."""

    authors: str
    year: int
    title: str
    arxiv: str | None = None
    venue: str = ""

    def cite(self) -> str:
        """``Tang et al. (2024), Top-nσ: ..., arXiv 2411.07641``."""
        where = f", {self.venue}" if self.venue else ""
        arxiv = f", arXiv {self.arxiv}" if self.arxiv else ""
        return f"{self.authors} ({self.year}), {self.title}{where}{arxiv}"

    def url(self) -> str | None:
        return f"https://arxiv.org/abs/{self.arxiv}" if self.arxiv else None


@dataclass(frozen=True)
class Estimate:
    """A number with its 95 % interval ``[low, high]``, computed over ``clusters`` independent
    units (prompts, documents). Below :data:`~sampler.report.bootstrap.MIN_PROMPTS` clusters
    the interval is a rough range and reports say so (:attr:`few_clusters`)."""

    value: float
    low: float
    high: float
    clusters: int
    unit: str = ""

    @property
    def few_clusters(self) -> bool:
        return self.clusters < MIN_PROMPTS

    def shown(self, digits: int = 3) -> str:
        """``0.812 (95 % CI 0.501–1.100) tokens``; NaN bounds as ``–``."""

        def number(x: float) -> str:
            return "–" if math.isnan(x) else f"{x:.{digits}f}"

        unit = f" {self.unit}" if self.unit else ""
        return f"{number(self.value)} (95 % CI {number(self.low)}–{number(self.high)}){unit}"


def verdict_above(estimate: Estimate, threshold: float = 0.0) -> Verdict:
    """The claim "the quantity exceeds ``threshold``": the interval above it reproduces it,
    below it contradicts it, across it is not significant."""
    if estimate.low > threshold:
        return "reproduced"
    if estimate.high < threshold:
        return "not reproduced"
    return "not significant"


def verdict_below(estimate: Estimate, threshold: float = 0.0) -> Verdict:
    """The claim "the quantity is below ``threshold``" (the mirror of :func:`verdict_above`)."""
    if estimate.high < threshold:
        return "reproduced"
    if estimate.low > threshold:
        return "not reproduced"
    return "not significant"


def verdict_within(estimate: Estimate, low: float, high: float) -> Verdict:
    """The claim "the quantity lies in ``[low, high]``" (an equivalence band the experiment
    states): the whole interval inside reproduces it, wholly outside contradicts it."""
    if low <= estimate.low and estimate.high <= high:
        return "reproduced"
    if estimate.high < low or estimate.low > high:
        return "not reproduced"
    return "not significant"


def overall_verdict(verdicts: Iterable[Verdict]) -> Verdict:
    """An experiment's verdict: reproduced only if every finding is; not reproduced if any
    finding contradicts the claim; otherwise not significant."""
    chosen = list(verdicts)
    if chosen and all(v == "reproduced" for v in chosen):
        return "reproduced"
    if "not reproduced" in chosen:
        return "not reproduced"
    return "not significant"


@dataclass(frozen=True)
class Finding:
    """One measured consequence of the claim: what was measured (one sentence, saying what the
    claim predicts), the estimate, the verdict, and the paper's own number when comparable."""

    statement: str
    estimate: Estimate
    verdict: Verdict
    paper: str = ""


@dataclass(frozen=True)
class Table:
    """A table of already formatted cells (model text in cells is escaped by the writer)."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass(frozen=True)
class Figure:
    """A rendered figure: ``file_name`` (``kept_set.png``; letters, digits, ``-``, ``_``),
    its caption and its PNG bytes (:func:`sampler.papers.writer.png_bytes`)."""

    file_name: str
    caption: str
    png: bytes


@dataclass
class Outcome:
    """What one run of an experiment measured.

    ``setup`` describes the grid (``{"prompts": 8, "tokens": 64, ...}``, plain values);
    ``runs`` the run-log ids of the generations it logged; ``notes`` are paragraphs of plain
    text (method, the human text used, why a number differs from the paper's).
    """

    findings: list[Finding]
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    setup: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        return overall_verdict(f.verdict for f in self.findings)


@dataclass(frozen=True)
class Options:
    """What the user chose: the model (``source`` if already loaded: tests pass a synthetic
    one), ``scale`` (1 = the few-minute default; N grows the grid, the experiment says how),
    the seed, the report folder, the run log (``db``, ``None`` = the default one) and the model
    cache. ``progress`` receives one-line messages (the command line prints them on stderr)."""

    model: str | None = None
    scale: int = 1
    seed: int = 0
    out: Path | None = None
    db: str | None = None
    cache_dir: str | None = None
    source: LogitSource | None = None
    progress: Callable[[str], None] = lambda line: None


@dataclass(frozen=True)
class Experiment:
    """One reproduction: ``name`` (the command's argument, ``top-n-sigma``), a title, the claim
    in one sentence of our words, its reference, ``run(options, source) -> Outcome``, the model
    it runs on by default and what ``--scale`` grows (one line, for ``--list``)."""

    name: str
    title: str
    claim: str
    reference: Reference
    run: Callable[[Options, LogitSource], Outcome]
    default_model: str = DEFAULT_MODEL
    scale_note: str = ""
