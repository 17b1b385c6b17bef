"""Shared figure plumbing: a headless matplotlib, a safe atomic save, and token labels."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sampler.errors import InvalidInputError
from sampler.files import atomic_writer

__all__ = [
    "FIGURE_FORMATS",
    "check_figure_path",
    "finish",
    "plain_text",
    "printable_label",
    "pyplot",
    "save_figure",
]

FIGURE_FORMATS = {".png": "png", ".svg": "svg"}
MAX_LABEL_CHARS = 16
_ESCAPES = {" ": "␣", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def plain_text(text: str) -> str:
    """Text matplotlib shows as it is: model and user text goes into tick labels and titles,
    where a pair of ``$`` would turn into mathtext (and may fail to parse)."""
    return text.replace("$", r"\$")


def printable_label(label: str, limit: int = MAX_LABEL_CHARS) -> str:
    """A token's text made visible on an axis: spaces as ␣, control characters escaped.

    Examples
    --------
    >>> printable_label(" the\\n")
    '␣the\\\\n'
    >>> printable_label("")
    "''"
    """
    if not label:
        return "''"
    shown = "".join(
        _ESCAPES.get(ch, repr(ch)[1:-1] if not ch.isprintable() else ch) for ch in label
    )
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed), imported on first use."""
    try:
        import matplotlib
    except ImportError:
        raise InvalidInputError(
            "plots need matplotlib: pip install 'sampler[plot]' (or matplotlib)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_figure_path(path: str | os.PathLike[str]) -> Path:
    """Validate a figure path before any work is done: known extension, existing folder."""
    target = Path(path)
    if target.suffix.lower() not in FIGURE_FORMATS:
        allowed = ", ".join(FIGURE_FORMATS)
        raise InvalidInputError(
            f"plot file {str(target)!r} has an unknown extension: use {allowed}"
        )
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidInputError(f"plot folder {str(folder)!r} does not exist: create it first")
    if target.is_dir():
        raise InvalidInputError(f"plot file {str(target)!r} is a folder: name a file")
    return target


def save_figure(figure: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``figure`` to ``path`` atomically: a failed write leaves any old file intact."""
    target = check_figure_path(path)
    with atomic_writer(target) as stream:
        figure.savefig(
            stream, format=FIGURE_FORMATS[target.suffix.lower()], dpi=110, bbox_inches="tight"
        )
    return target


def finish(figure: Any, axes: Any, xlabel: str, ylabel: str, title: str) -> Any:
    """Label, title, grid and legend one plot the way every run plot is, and lay it out."""
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    return figure
