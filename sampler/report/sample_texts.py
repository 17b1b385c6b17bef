"""What a sweep wrote, shown as text: one sample per temperature of one prompt, marked where
it leaves greedy's continuation.

A sweep's table says how temperature moves entropy and diversity; these texts show it. For one
prompt, greedy's row (τ = 0) comes first, then sample 0 at each other temperature, each with
the step (token index) of its first token that differs from greedy's
(:func:`~sampler.generation.compare.first_divergence`, the same rule as ``sampler compare``).

Examples
--------
>>> rows = [
...     {"row_index": 0, "prompt": "p", "temperature": 0.0, "sample": 0,
...      "token_ids": [1, 2, 3], "text": "a b c"},
...     {"row_index": 1, "prompt": "p", "temperature": 1.0, "sample": 0,
...      "token_ids": [1, 2, 4], "text": "a b d"},
... ]
>>> greedy, hot = pick_sample_texts(rows, decode=lambda ids: " ".join("abcd"[i - 1] for i in ids))
>>> greedy.divergence_step, hot.divergence_step, hot.text[hot.divergence_char:]
(None, 2, ' d')
>>> format_sample_texts("p", [greedy, hot], width=40)[-2:]
['τ = 1 · sample 0 · leaves greedy at token 2', '    a b│ d']
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sampler.generation.compare import first_divergence

__all__ = [
    "DIVERGENCE_MARK",
    "SampleText",
    "divergence_steps",
    "format_sample_texts",
    "pick_sample_texts",
    "terminal_safe",
]

DIVERGENCE_MARK = "│"  # put in the text before the first token that differs from greedy's
_INDENT = "    "


@dataclass(frozen=True)
class SampleText:
    """One row's text, seen against greedy's continuation of the same prompt.

    ``divergence_step`` is the index of the first token that differs from greedy's (a length
    difference counts), ``None`` when the tokens are greedy's own, and for greedy's row itself.
    ``divergence_char`` is where that token starts in ``text`` (``None`` when it is not known:
    no ``decode`` was given, or the text is not the plain decoding of its tokens).
    """

    row_index: int
    temperature: float
    sample: int
    text: str
    token_ids: tuple[int, ...]
    finish_reason: str
    is_greedy: bool
    divergence_step: int | None
    divergence_char: int | None

    def to_dict(self) -> dict:
        """A JSON-ready dict of every field (token ids as a list)."""
        return {
            "row_index": self.row_index,
            "temperature": self.temperature,
            "sample": self.sample,
            "is_greedy": self.is_greedy,
            "divergence_step": self.divergence_step,
            "divergence_char": self.divergence_char,
            "finish_reason": self.finish_reason,
            "text": self.text,
            "token_ids": list(self.token_ids),
        }


def _greedy_rows(completions: Iterable[dict]) -> dict[str, dict]:
    """Per prompt, its first τ = 0 row (lowest sample): the continuation others are seen against."""
    greedy: dict[str, dict] = {}
    for row in completions:
        if row["temperature"] == 0 and (
            row["prompt"] not in greedy or row["sample"] < greedy[row["prompt"]]["sample"]
        ):
            greedy[row["prompt"]] = row
    return greedy


def divergence_steps(completions: Sequence[dict]) -> dict[int, int | None]:
    """Per ``row_index``, the step where the row first leaves its prompt's greedy tokens.

    ``None``: the row's tokens are greedy's (greedy's own row included). Rows of a prompt
    with no τ = 0 row are left out.
    """
    greedy = _greedy_rows(completions)
    return {
        row["row_index"]: first_divergence(greedy[row["prompt"]]["token_ids"], row["token_ids"])
        for row in completions
        if row["prompt"] in greedy
    }


def _split_char(
    text: str, token_ids: Sequence[int], step: int | None, decode: Callable | None
) -> int | None:
    if step is None or decode is None:
        return None
    before = decode(list(token_ids[:step]))
    return len(before) if text.startswith(before) else None


def pick_sample_texts(
    completions: Iterable[dict],
    prompt: str | None = None,
    decode: Callable[[list[int]], str] | None = None,
) -> list[SampleText]:
    """Greedy's row, then the lowest sample at each other temperature, of one prompt.

    Parameters
    ----------
    completions
        Run-log completions (``row_index``, ``prompt``, ``temperature``, ``sample``,
        ``token_ids``, ``text``; steps are not needed), as ``RunStore.iter_completions`` gives.
    prompt
        Whose rows; default the prompt of the run's first row.
    decode
        Token ids to text (``source.decode``), to find where the first differing token starts
        in the text; without it ``divergence_char`` is ``None``.

    Returns
    -------
    list of SampleText
        τ = 0 first (when the run has it), then by temperature ascending.
    """
    rows = sorted(completions, key=lambda row: row["row_index"])
    if not rows:
        return []
    prompt = rows[0]["prompt"] if prompt is None else prompt
    chosen: dict[float, dict] = {}
    for row in rows:
        if row["prompt"] == prompt and (
            row["temperature"] not in chosen or row["sample"] < chosen[row["temperature"]]["sample"]
        ):
            chosen[row["temperature"]] = row
    greedy = chosen.get(0.0)
    picked = []
    for temperature in sorted(chosen):
        row = chosen[temperature]
        ids = tuple(row["token_ids"])
        step = None if greedy is None else first_divergence(greedy["token_ids"], ids)
        picked.append(
            SampleText(
                row_index=row["row_index"],
                temperature=temperature,
                sample=row["sample"],
                text=row["text"],
                token_ids=ids,
                finish_reason=row.get("finish_reason", "length"),
                is_greedy=row is greedy,
                divergence_step=step,
                divergence_char=_split_char(row["text"], ids, step, decode),
            )
        )
    return picked


def terminal_safe(text: str) -> str:
    """``text`` on one line with nothing a terminal would act on: a line break shows as ``⏎``,
    a tab as a space, any other control character as its ``\\x..`` escape."""
    shown = []
    for char in re.sub(r"\n+", lambda breaks: f" {'⏎' * len(breaks.group())} ", text):
        if char == "\t":
            shown.append(" ")
        elif unicodedata.category(char) in ("Cc", "Cf", "Cs") and char != "\u200d":
            shown.append(char.encode("unicode_escape", "backslashreplace").decode("ascii"))
        else:
            shown.append(char)
    return "".join(shown)


def _label(sample: SampleText, has_greedy: bool) -> str:
    if sample.temperature == 0:
        head = "τ = 0 (greedy)"
    else:
        head = f"τ = {sample.temperature:g} · sample {sample.sample}"
    if sample.is_greedy or not has_greedy:
        where = ""
    elif sample.divergence_step is None:
        where = " · same as greedy"
    else:
        where = f" · leaves greedy at token {sample.divergence_step}"
    return f"{head}{where}" + (" · ended (EOS)" if sample.finish_reason == "eos" else "")


def _marked(sample: SampleText) -> str:
    if sample.divergence_char is None:
        return terminal_safe(sample.text)
    cut = sample.divergence_char
    return terminal_safe(sample.text[:cut]) + DIVERGENCE_MARK + terminal_safe(sample.text[cut:])


def format_sample_texts(
    prompt: str, samples: Sequence[SampleText], width: int = 100, max_lines: int = 6
) -> list[str]:
    """Lines for a terminal: the prompt once, then each sample's label and its wrapped text.

    Each text is wrapped to ``width`` (at most ``max_lines`` lines, the rest cut with ``[…]``);
    ``│`` marks where the first token that differs from greedy's starts.
    """
    has_greedy = any(sample.is_greedy for sample in samples)
    lines = textwrap.wrap(
        f"Sample texts · prompt: {terminal_safe(prompt)}",
        width,
        subsequent_indent=_INDENT,
    )
    if has_greedy:
        lines.append(f"({DIVERGENCE_MARK} marks the first token that differs from greedy's)")
    else:
        lines.append("(no τ = 0 row in this run: no greedy continuation to compare with)")
    for sample in samples:
        lines.append(_label(sample, has_greedy))
        text = _marked(sample) or "(empty)"
        lines += textwrap.wrap(
            text,
            max(width, len(_INDENT) + 20),
            initial_indent=_INDENT,
            subsequent_indent=_INDENT,
            max_lines=max_lines,
            placeholder=" […]",
            drop_whitespace=True,
        )
    return lines
