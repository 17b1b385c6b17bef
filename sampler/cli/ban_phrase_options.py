"""The phrase-ban flags: ``--ban-phrase TEXT`` (repeatable) and ``--ban-phrases FILE``, and
the checked phrases they give (re-exported by :mod:`sampler.cli.options`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

__all__ = ["ban_phrase_options", "banned_phrases"]


def ban_phrase_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--ban-phrase TEXT`` (repeatable) and ``--ban-phrases FILE``, reaching the command
    as ``ban_phrase_texts`` and ``ban_phrases_file``; :func:`banned_phrases` joins them."""
    command = click.option(
        "--ban-phrases",
        "ban_phrases_file",
        metavar="FILE",
        help="Banned phrases, one a line (see --ban-phrase).",
    )(command)
    return click.option(
        "--ban-phrase",
        "ban_phrase_texts",
        multiple=True,
        metavar="TEXT",
        help="A phrase no row may produce (repeatable; any case): completing it rewinds the "
        "row to where it began and bans that token there (docs/phrase-bans.md).",
    )(command)


def banned_phrases(texts: Sequence[str], file: str | None) -> tuple[str, ...] | None:
    """The phrases of ``--ban-phrase`` then ``--ban-phrases FILE``, checked; ``None`` when
    neither was given."""
    from sampler.generation.phrase_bans import check_phrases, read_phrase_file

    if not texts and file is None:
        return None
    phrases = [*check_phrases(texts, origin="--ban-phrase")]
    if file is not None:
        phrases += read_phrase_file(file)
    return check_phrases(phrases)
