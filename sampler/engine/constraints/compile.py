"""Checking and compiling a constraint, and reading one from a file.

A grammar file's syntax: ``.gbnf`` is GBNF and ``.lark`` is Lark; any other name is GBNF when
its text has a ``::=`` rule (GBNF's rule sign) and Lark otherwise. llguidance converts GBNF to
Lark (``llguidance.gbnf_to_lark``) and compiles Lark, regular expressions and JSON schemas.

Examples
--------
>>> grammar_syntax_of("answers.gbnf", 'root ::= "yes" | "no"')
'gbnf'
>>> grammar_syntax_of("answers.txt", 'start: "yes" | "no"')
'lark'
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from sampler.engine.constraints import SYNTAXES
from sampler.errors import InvalidInputError
from sampler.messages import check_text

__all__ = ["compiled", "grammar_syntax_of", "import_llguidance", "read_constraint_file"]

# Whitespace between JSON tokens as llama.cpp's JSON schemas allow it (SPACE_RULE in
# common/json-schema-to-grammar.cpp: nothing, a space, or one or two newlines and up to 20
# spaces or tabs). llguidance's default allows any run of whitespace, in which a model at a
# high temperature can wander until max_new_tokens. A schema's own "x-guidance" overrides it.
JSON_WHITESPACE = r"(?: |\n{1,2}[ \t]{0,20})?"
# the longest grammar text a constraint may hold (a run log stores it in every row's params)
MAX_GRAMMAR_CHARS = 100_000


def import_llguidance() -> Any:
    """The llguidance module, or a one-line error naming the extra that installs it."""
    try:
        import llguidance
    except ImportError:
        raise InvalidInputError(
            "a grammar needs llguidance: pip install 'sampler[grammar]' (llguidance==1.9.1)"
        ) from None
    return llguidance


def grammar_syntax_of(path: str, text: str) -> str:
    """The syntax of grammar file ``path`` holding ``text``: by extension, else by content."""
    suffix = Path(path).suffix.lower()
    if suffix in (".gbnf", ".lark"):
        return suffix[1:]
    return "gbnf" if "::=" in text else "lark"


def read_constraint_file(path: str, what: str) -> str:
    """The UTF-8 text of the constraint file ``path`` (``what`` names its flag in errors)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidInputError(f"{what} {path!r}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError:
        raise InvalidInputError(f"{what} {path!r} is not UTF-8 text") from None
    if not text.strip():
        raise InvalidInputError(f"{what} {path!r} is empty: give a grammar")
    return text


@functools.lru_cache(maxsize=64)
def compiled(syntax: str, text: str) -> str:
    """llguidance's grammar for ``text`` written in ``syntax``, checked (a one-line error
    naming what is wrong otherwise). Cached: a SamplingParams checks its constraint on every
    construction."""
    if syntax not in SYNTAXES:
        raise InvalidInputError(
            f"grammar_syntax={syntax!r} is unknown: use one of {', '.join(SYNTAXES)}"
        )
    check_text(f"the {syntax} grammar", text)
    if len(text) > MAX_GRAMMAR_CHARS:
        raise InvalidInputError(
            f"the {syntax} grammar has {len(text):,} characters: allowed at most "
            f"{MAX_GRAMMAR_CHARS:,}"
        )
    llguidance = import_llguidance()
    if syntax == "json_schema":
        try:
            schema = json.loads(text)
        except ValueError as error:
            raise InvalidInputError(f"the JSON schema is not JSON: {error}") from None
        if not isinstance(schema, dict | bool):
            raise InvalidInputError("the JSON schema must be a JSON object (or true/false)")
    try:
        if syntax == "gbnf":
            grammar = llguidance.grammar_from("lark", gbnf_as_lark(text))
        elif syntax == "json_schema":
            grammar = llguidance.LLMatcher.grammar_from_json_schema(
                text, defaults={"whitespace_pattern": JSON_WHITESPACE}
            )
        else:
            grammar = llguidance.grammar_from(syntax, text)
    except Exception as error:  # the GBNF converter and the JSON compiler raise plain errors
        raise InvalidInputError(f"the {syntax} grammar is invalid: {_reason(error)}") from None
    problem = llguidance.LLMatcher.validate_grammar(grammar)
    if problem:
        raise InvalidInputError(f"the {syntax} grammar is invalid: {_reason(problem)}")
    return grammar


def gbnf_as_lark(text: str) -> str:
    """A GBNF grammar as Lark with llama.cpp's meaning: every rule a parser rule.

    llguidance's own converter (``llguidance.gbnf_to_lark``) turns each rule made only of
    characters into a Lark terminal, which its lexer matches greedily (as long as it can):
    llama.cpp's ``arithmetic.gbnf``, whose ``ws ::= [ \t\n]*`` may also match the ``"\n"``
    that ends an equation, can then never end. llama.cpp's grammar is a pushdown automaton over
    characters, where either reading stays open. Here the converter's parser and resolution
    run as they are (llguidance 1.9.1's ``GrammarParser`` and ``resolve``), and its terminals are
    made rules again, so that only single characters and literals are lexemes. Strict: a
    Lark text given as GBNF is an error (llguidance's ``"gbnf"`` would take it as Lark).
    """
    from llguidance import gbnf_to_lark as converter

    rules = converter.GrammarParser().parse(text)
    converter.resolve(rules)
    for rule in rules.values():
        if rule.rule_is_terminal:
            rule.rule_is_terminal, rule.name = False, rule.name.lower()
    ordered = sorted(rules.values(), key=lambda rule: rule.order)
    return "%llguidance {}\n" + "".join(f"{rule}\n" for rule in ordered)


def _reason(error: object) -> str:
    """llguidance's message on one line (it may quote the grammar over several)."""
    text = str(error).replace("Failed to convert the grammar from GBNF to Lark: ", "")
    parts = [part.strip() for part in text.splitlines() if part.strip()]
    return " · ".join(parts[:2]) if parts else "no reason given"
