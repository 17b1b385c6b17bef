"""Constrained decoding: a grammar turned into a token mask per step (the ``grammar`` stage).

A constraint is a pair ``(grammar_syntax, grammar)``: the syntax (``gbnf``, ``lark``,
``regex`` or ``json_schema``) and its text. :mod:`sampler.constraints.compile` checks and
compiles it; :mod:`sampler.constraints.matcher` follows one row through it, token by token,
over the source's own vocabulary; the stage (:mod:`sampler.engine.filters.grammar`) masks the
tokens it does not allow. The matcher is llguidance (``pip install 'sampler[grammar]'``),
imported only when a constraint is used (docs/constraints.md says why llguidance).
"""

from __future__ import annotations

__all__ = ["SYNTAXES"]

# the syntaxes a constraint is written in, as the grammar_syntax setting names them
SYNTAXES = ("gbnf", "lark", "regex", "json_schema")
