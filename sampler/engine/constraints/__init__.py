"""Constrained decoding: a grammar turned into a token mask per step (the ``grammar`` stage).

A constraint is a pair ``(grammar_syntax, grammar)``: the syntax (``gbnf``, ``lark``,
``regex`` or ``json_schema``) and its text. :mod:`sampler.engine.constraints.compile` checks and
compiles it; :mod:`sampler.engine.constraints.matcher` follows one row through it, token by token,
over the source's own vocabulary; the stage (:mod:`sampler.engine.filters.grammar`) masks the
tokens it does not allow. The matcher is llguidance (``pip install 'sampler[grammar]'``),
imported only when a constraint is used (docs/constraints.md says why llguidance).
"""

from __future__ import annotations

__all__ = ["SYNTAXES", "grammar_in_one_line", "shown_value"]

# the syntaxes a constraint is written in, as the grammar_syntax setting names them
SYNTAXES = ("gbnf", "lark", "regex", "json_schema")


def grammar_in_one_line(text: str, width: int = 40) -> str:
    """A grammar as a settings line shows it: its first rule (comments skipped), cut to
    ``width`` characters, and how many lines it has.

    >>> grammar_in_one_line('# a date\\nroot ::= year "-" month\\nyear ::= [0-9]{4}')
    '\\'root ::= year "-" month\\' (+1 lines)'
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    rules = [line for line in lines if not line.startswith(("#", "//"))] or lines or [""]
    first = rules[0] if len(rules[0]) <= width else rules[0][: width - 1] + "…"
    more = len(rules) - 1
    return repr(first) + (f" (+{more} lines)" if more else "")


def shown_value(name: str, value: object) -> object:
    """A setting's value for a settings line: a grammar in one line, anything else as it is."""
    return grammar_in_one_line(value) if name == "grammar" and isinstance(value, str) else value
