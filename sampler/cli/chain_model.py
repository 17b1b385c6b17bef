"""``sampler chain --prompt P [--model M] [--written TEXT]``: the chain on a real model's
next-token row (:mod:`sampler.analysis.model_step`), as a table of its top tokens per stage,
one JSON document, or a picture (``--plot``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from sampler.engine.params import SamplingParams
from sampler.engine.trace import StageTrace
from sampler.errors import InvalidInputError
from sampler.json_values import to_json
from sampler.tables import aligned_table, format_number

__all__ = ["DEFAULT_TOP", "check_model_flags", "model_chain", "settings_line"]

DEFAULT_TOP = 20  # tokens a model's step shows (the model's likeliest)
LABEL_WIDTH = 24  # characters of a token's escaped label in the table


def check_model_flags(
    logits: tuple[str, ...],
    model: str | None,
    prompt: str | None,
    written: str | None,
    labels: str | None,
    history: str | None,
    top: int | None,
) -> None:
    """The flags of a model's row go together, and not with LOGITS' (one-line errors)."""
    if prompt is None:
        for flag, value in (("--model", model), ("--written", written), ("--top", top)):
            if value is not None:
                raise InvalidInputError(
                    f"{flag} {value} goes with a model's row: give --prompt TEXT (the chain then "
                    "runs on the model's next-token row), or LOGITS without it"
                )
        return
    if logits:
        raise InvalidInputError(
            f"LOGITS ({' '.join(logits)}) and --prompt are two rows: give LOGITS, or --prompt "
            "(with --model) for a model's row, not both"
        )
    for flag, value in (("--labels", labels), ("--history", history)):
        if value is not None:
            raise InvalidInputError(
                f"{flag} {value} names LOGITS' tokens: a model's row has its own tokens, and its "
                "history is the prompt then --written"
            )


def model_chain(
    model: str,
    prompt: str,
    written: str,
    raw: bool,
    top: int,
    cache_dir: str | None,
    params_by_order: dict[str, SamplingParams],
    settings_text: str,
    plot_path: str | None,
    as_json: bool,
) -> None:
    """Load ``model``, trace each order's chain on its row after ``prompt`` + ``written``,
    print the table (or JSON) and draw ``plot_path`` if given (checked before anything runs)."""
    from sampler.analysis.model_step import model_row, shown_tokens, trace_step
    from sampler.cli.options import load_model
    from sampler.sources.base import use_chat

    if plot_path is not None:
        from sampler.plots.figures import check_figure_path

        check_figure_path(plot_path)
        if len(params_by_order) > 1:
            raise InvalidInputError("--plot draws one chain: give one --order, not all")
    if top < 1:
        raise InvalidInputError(f"--top {top} shows no token: use 1 or more")
    source = load_model(model, cache_dir)
    row = model_row(source, prompt, written, use_chat(source, raw))
    traces = {name: trace_step(source, row, params) for name, params in params_by_order.items()}
    shown = shown_tokens(next(iter(traces.values())), top)
    labels = [source.token_label(t) for t in shown]
    if plot_path is not None:
        from sampler.plots.step_plot import plot_step

        (steps,) = traces.values()
        plot_step(steps, shown, labels, _title(row, settings_text), plot_path)
    if as_json:
        click.echo(to_json(_json(row, traces, params_by_order, shown, labels)))
        return
    click.echo(_heading(row, len(row.logits)))
    for name, steps in traces.items():
        stages = " → ".join(params_by_order[name].stages)
        click.echo(f"\norder {name}: {stages}")
        click.echo("\n".join(_stage_table(steps)))
        grammar = next((s for s in steps if s.stage == "grammar"), None)
        if grammar is not None:
            click.echo(grammar_line(grammar, len(row.logits)))
        click.echo("\n" + "\n".join(_token_table(steps, shown, labels)))
    if plot_path is not None:
        click.echo(f"\nplot written to {plot_path}")


def settings_line(params: SamplingParams, constraint: str | None) -> str:
    """The settings that matter (:func:`~sampler.analysis.divergence.describe`), the
    constraint named by its flag and file rather than by its text."""
    from sampler.analysis.divergence import describe

    if not params.grammar:
        return describe(params)
    plain = dataclasses.replace(params, grammar="", grammar_syntax="gbnf")
    return f"{describe(plain)} {constraint or params.grammar_syntax}"


def grammar_line(step: StageTrace, vocab_size: int) -> str:
    """The grammar stage's telemetry in words (:mod:`sampler.engine.filters.grammar`)."""
    notes = step.notes
    allowed = int(notes["grammar_allowed"])
    return (
        f"grammar: allows {allowed:,} of {vocab_size:,} tokens · removed mass "
        f"{format_number(notes['grammar_removed_mass'], 4)} · KL "
        f"{format_number(notes['grammar_kl'], 4)} nats · the model's top-1 is "
        f"{'illegal' if notes['grammar_top1_illegal'] else 'legal'} · "
        f"{'forced (one token allowed)' if notes['grammar_forced'] else 'not forced'}"
    )


def escaped(label: str, width: int = LABEL_WIDTH) -> str:
    """A token's text for a table or an axis: spaces as ␣, control characters escaped."""
    from sampler.plots.figures import printable_label

    return printable_label(label, width)


def _heading(row: Any, vocab_size: int) -> str:
    return (
        f"model {row.model} · prompt {row.prompt!r} ({len(row.prompt_ids)} tokens"
        f"{', chat template' if row.chat else ''}) · written "
        f"{row.written!r} ({len(row.written_ids)} tokens) · vocabulary {vocab_size:,}"
    )


def _title(row: Any, settings_text: str) -> str:
    return f"{row.model} · prompt {row.prompt!r} · written {row.written!r}\n{settings_text}"


def _stage_table(steps: list[StageTrace]) -> list[str]:
    header = ["stage", "kept", "H nats", "kept mass"]
    body = [
        [s.stage, f"{s.kept_tokens:,}", format_number(s.entropy, 4), format_number(s.kept_mass, 4)]
        for s in steps
    ]
    return aligned_table(header, body)


def _token_table(steps: list[StageTrace], shown: list[int], labels: list[str]) -> list[str]:
    """One line per shown token: its probability after each stage (``-`` where dropped)."""
    header = ["token", "id", *(f"P {s.stage}" for s in steps)]
    body = [
        [
            escaped(label),
            str(token),
            *(
                "-" if s.logits[token] is None else format_number(s.probs[token], 4)
                for s in steps
            ),
        ]
        for token, label in zip(shown, labels, strict=True)
    ]
    return aligned_table(header, body)


def _json(
    row: Any,
    traces: dict[str, list[StageTrace]],
    params_by_order: dict[str, SamplingParams],
    shown: list[int],
    labels: list[str],
) -> dict[str, Any]:
    """The step as data: each stage's summary, notes, and the shown tokens' logits and
    probabilities (the whole vocabulary would be megabytes per stage)."""

    def stage(step: StageTrace) -> dict[str, Any]:
        return {
            "stage": step.stage,
            "kept_tokens": step.kept_tokens,
            "entropy": step.entropy,
            "kept_mass": step.kept_mass,
            "notes": step.notes,
            "logits": [step.logits[t] for t in shown],
            "probs": [step.probs[t] for t in shown],
        }

    return {
        "model": row.model,
        "prompt": row.prompt,
        "written": row.written,
        "prompt_tokens": len(row.prompt_ids),
        "written_ids": row.written_ids,
        "vocab_size": len(row.logits),
        "tokens": [{"id": t, "label": label} for t, label in zip(shown, labels, strict=True)],
        "chains": {
            name: {"stages": list(params_by_order[name].stages), "trace": [stage(s) for s in st]}
            for name, st in traces.items()
        },
    }


def constraint_flag(ctx_params: dict[str, Any]) -> str | None:
    """The constraint as the user gave it (``--json-schema person.schema.json``), for titles."""
    for flag, key in (
        ("--grammar", "grammar_file"),
        ("--json-schema", "json_schema_file"),
        ("--regex", "regex"),
    ):
        value = ctx_params.get(key)
        if value is not None:
            return f"{flag} {Path(value).name if key != 'regex' else repr(value)}"
    return None
