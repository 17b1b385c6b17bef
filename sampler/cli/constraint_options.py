"""The constraint's flags: ``--grammar FILE``, ``--json-schema FILE``, ``--regex R`` and
``--grammar-syntax``, which become the stage table's two settings ``grammar`` (the text) and
``grammar_syntax``.

A grammar file is GBNF or Lark: ``.gbnf`` and ``.lark`` say which; any other name is GBNF when
its text has a ``::=`` rule and Lark otherwise
(:func:`~sampler.engine.constraints.compile.grammar_syntax_of`); ``--grammar-syntax`` says it
outright. At most one of the three sources may be given. ``--grammar-mode`` says how a
grammar's mask meets the chain (the setting ``grammar_mode``: ``auto``, ``mask`` or
``resample``, :mod:`sampler.engine.resample`); it needs a grammar (one of the three, or a
sweep config's).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from sampler.engine.constraints import SYNTAXES
from sampler.engine.presets import GRAMMAR_MODES, check_mode_has_grammar
from sampler.errors import InvalidInputError

__all__ = ["constraint_options"]

_FLAGS = ("grammar_file", "json_schema_file", "regex", "grammar_syntax_flag")
_MODE_FLAG = "grammar_mode_flag"


def constraint_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the constraint's flags to ``command``; it receives ``grammar`` and
    ``grammar_syntax`` among its settings when one is given (marked as given on the command
    line, so that ``sweep`` lets them override its config)."""

    @functools.wraps(command)
    def with_constraint(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in _FLAGS}
        mode = kwargs.pop(_MODE_FLAG)
        constraint = _constraint(**given)
        ctx = click.get_current_context()
        if constraint is not None:
            kwargs["grammar"], kwargs["grammar_syntax"] = constraint
            for name in ("grammar", "grammar_syntax"):
                ctx.set_parameter_source(name, ParameterSource.COMMANDLINE)
        if mode is not None:
            if constraint is None and kwargs.get("config_path") is None:
                check_mode_has_grammar("", mode)  # a sweep's config may hold the grammar
            kwargs["grammar_mode"] = mode
            ctx.set_parameter_source("grammar_mode", ParameterSource.COMMANDLINE)
        return command(*args, **kwargs)

    flags = [
        click.option(
            "--grammar",
            "grammar_file",
            metavar="FILE",
            help="Constrain the text to a grammar: a GBNF (llama.cpp) or Lark file (.gbnf or "
            ".lark; else GBNF when it has a ::= rule, Lark otherwise).",
        ),
        click.option(
            "--grammar-syntax",
            "grammar_syntax_flag",
            type=click.Choice(("gbnf", "lark")),
            help="Read --grammar FILE as this syntax, whatever its name.",
        ),
        click.option(
            "--json-schema",
            "json_schema_file",
            metavar="FILE",
            help="Constrain the text to JSON valid under this JSON schema file.",
        ),
        click.option("--regex", metavar="R", help="Constrain the text to a regular expression."),
        click.option(
            "--grammar-mode",
            _MODE_FLAG,
            type=click.Choice(GRAMMAR_MODES),
            help="How the grammar's mask meets the chain: mask (first, as transformers and "
            "vLLM), resample (as llama.cpp: draw without it, and only when that token is "
            "illegal, draw again after it) or auto (resample under --order llama.cpp, mask "
            "elsewhere; the default).",
        ),
    ]
    for flag in reversed(flags):
        with_constraint = flag(with_constraint)
    return with_constraint


def _constraint(
    grammar_file: str | None,
    json_schema_file: str | None,
    regex: str | None,
    grammar_syntax_flag: str | None,
) -> tuple[str, str] | None:
    """``(text, syntax)`` of the one constraint given, checked (a one-line error otherwise)."""
    from sampler.engine.constraints.compile import compiled, grammar_syntax_of, read_constraint_file

    sources = [
        flag
        for flag, value in (
            ("--grammar", grammar_file),
            ("--json-schema", json_schema_file),
            ("--regex", regex),
        )
        if value is not None
    ]
    if len(sources) > 1:
        raise InvalidInputError(
            f"{' and '.join(sources)} both constrain the text: give only one of --grammar, "
            "--json-schema and --regex"
        )
    if grammar_syntax_flag is not None and grammar_file is None:
        raise InvalidInputError("--grammar-syntax says how to read --grammar FILE: give one")
    if grammar_file is not None:
        text = read_constraint_file(grammar_file, "--grammar")
        syntax = grammar_syntax_flag or grammar_syntax_of(grammar_file, text)
    elif json_schema_file is not None:
        text, syntax = read_constraint_file(json_schema_file, "--json-schema"), "json_schema"
    elif regex is not None:
        if not regex:
            raise InvalidInputError("--regex '' is empty: give a regular expression")
        text, syntax = regex, "regex"
    else:
        return None
    assert syntax in SYNTAXES
    try:
        compiled(syntax, text)
    except InvalidInputError as error:
        where = {"regex": "--regex"}.get(syntax, f"{sources[0]} {grammar_file or json_schema_file}")
        raise InvalidInputError(f"{where}: {error}") from None
    return text, syntax
