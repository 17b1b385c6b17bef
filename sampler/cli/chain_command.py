"""``sampler chain``: what each stage of a chain does to one row, of LOGITS given on the
command line or of a model's next token after a prompt (:mod:`sampler.cli.chain_model`)."""

from __future__ import annotations

from typing import Any

import click

from sampler.cli import cli
from sampler.cli.options import (
    JSON_OPTION,
    MODEL_HELP,
    cache_option,
    model_option,
    parse_logit,
    parse_temperature,
    raw_option,
    sampling_options,
    temperature_option,
)
from sampler.engine.params import DEFAULT_ORDER
from sampler.engine.presets import PRESETS
from sampler.errors import InvalidInputError
from sampler.json_values import to_json
from sampler.sources import DEFAULT_MODEL


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("logits", nargs=-1)
@click.option("--labels", metavar="A,B,C", help="Comma-separated token names, one per logit.")
@click.option(
    "--history",
    metavar="A,B,A",
    help="Tokens seen before (labels), for the penalties and DRY. DRY's vocabulary is the "
    "labels: a label that contains a sequence breaker is one.",
)
@temperature_option()
@sampling_options
@click.option(
    "--order",
    default=DEFAULT_ORDER,
    show_default=True,
    metavar="PRESET|a,b,c|all",
    help=f"{', '.join(PRESETS)}, a comma-separated stage list, or all: every preset.",
)
@click.option(
    "--prompt",
    metavar="TEXT",
    help="Use a model's next-token row after this prompt instead of LOGITS.",
)
@model_option(default=None, help=f"The model of --prompt (default {DEFAULT_MODEL}). {MODEL_HELP}")
@click.option(
    "--written",
    metavar="TEXT",
    help="Text the model wrote after the prompt: the penalties' history and the grammar's "
    "matcher take it before this step.",
)
@raw_option
@click.option(
    "--top",
    type=int,
    default=None,
    metavar="N",
    help="With --prompt: show the model's N likeliest tokens (default 20), and where the "
    "chain moved their probability.",
)
@click.option(
    "--plot",
    "plot_path",
    metavar="FILE",
    help="Also draw the step to FILE (.png or .svg): the tokens' probability before and after "
    "the chain (the grammar's mask when there is one), the dropped ones hatched.",
)
@cache_option
@JSON_OPTION
def chain(
    logits: tuple[str, ...],
    labels: str | None,
    history: str | None,
    temperature_text: str,
    order: str,
    prompt: str | None,
    model: str | None,
    written: str | None,
    raw: bool,
    top: int | None,
    plot_path: str | None,
    cache_dir: str | None,
    as_json: bool,
    **filters: float | int | str,
) -> None:
    """Show what each stage of a sampling chain does to one row of LOGITS, or to a model's
    next-token row after --prompt (and --written).

    With no LOGITS it uses the cheat sheet's 3.0 1.0 0.2. Example, the peers' orders on
    the same settings: sampler chain 3 2.5 1 0.2 -t 2 --min-p 0.2 --top-k 3 --order all.
    A model's step under a JSON schema, drawn: sampler chain --prompt "Describe a person as
    JSON." --written '{"name": "Ada", "' --json-schema person.schema.json --plot step.png
    """
    from dataclasses import asdict

    from sampler.cheatsheet import CHEAT_SHEET_LABELS, CHEAT_SHEET_LOGITS, default_labels
    from sampler.cli.chain_model import (
        DEFAULT_TOP,
        check_model_flags,
        constraint_flag,
        model_chain,
        settings_line,
    )
    from sampler.engine.params import SamplingParams
    from sampler.engine.trace import format_trace, trace_chain

    check_model_flags(logits, model, prompt, written, labels, history, top)
    orders = list(PRESETS) if order == "all" else [order]
    params_by_order = {
        name: SamplingParams(
            temperature=parse_temperature(temperature_text),
            order=name if name in PRESETS else name.split(","),
            **filters,
        )
        for name in orders
    }
    if prompt is not None:
        constraint = constraint_flag(click.get_current_context().params)
        model_chain(
            model or DEFAULT_MODEL, prompt, written or "", raw,
            DEFAULT_TOP if top is None else top, cache_dir,
            params_by_order, settings_line(params_by_order[orders[0]], constraint), plot_path,
            as_json,
        )
        return
    if filters.get("grammar"):
        raise InvalidInputError(
            "a grammar needs a model's vocabulary, and LOGITS have none: give --prompt TEXT "
            "(and --model M) to run the chain on a model's next-token row"
        )
    if plot_path is not None:
        raise InvalidInputError(
            f"--plot {plot_path} draws a model's step: give --prompt TEXT (LOGITS have their "
            "picture in sampler softmax --plot)"
        )
    values = [parse_logit(text) for text in logits] or list(CHEAT_SHEET_LOGITS)
    names = (
        labels.split(",")
        if labels
        else (default_labels(len(values)) if logits else list(CHEAT_SHEET_LABELS))
    )
    if len(names) != len(values):
        raise InvalidInputError(
            f"{len(names)} labels given for {len(values)} logits: give exactly one label per logit"
        )
    seen = _history(history, names)
    traces, chains = {}, {}
    for name, params in params_by_order.items():
        traces[name] = trace_chain(values, params, seen, vocabulary=_label_vocabulary(names))
        chains[name] = params.stages
    if as_json:
        click.echo(
            to_json(
                {
                    "labels": names,
                    "chains": {
                        name: [asdict(step) for step in steps] for name, steps in traces.items()
                    },
                }
            )
        )
        return
    for index, (name, steps) in enumerate(traces.items()):
        # the chain the row runs: mirostat replaces the order's truncation stages
        stages_text = " → ".join(chains[name])
        click.echo(
            ("\n" if index else "") + format_trace(steps, names, f"order {name}: {stages_text}")
        )
    if {"penalties", "dry"} & set(params.active_stages) and not seen:
        click.echo(
            "\n(the penalties and DRY act on tokens seen before: give them with --history, "
            "e.g. --history " + ",".join(names[:2] * 2) + ")"
        )
    if filters.get("xtc_probability"):
        click.echo(
            f"\n(XTC is shown with its coin fired; it fires on a step with probability "
            f"{filters['xtc_probability']:g})"
        )


def _history(text: str | None, names: list[str]) -> list[int]:
    """``--history A,B,A``: the token ids of labels ``names``, in order."""
    if not text:
        return []
    ids = {name: index for index, name in enumerate(names)}
    unknown = [item for item in text.split(",") if item not in ids]
    if unknown:
        raise InvalidInputError(
            f"--history token {unknown[0]!r} is not a label: use the labels "
            f"{', '.join(names)} (comma-separated, e.g. --history {names[0]},{names[-1]})"
        )
    return [ids[item] for item in text.split(",")]


def _label_vocabulary(names: list[str]) -> Any:
    """The labels as DRY's vocabulary: token ``i``'s text is its label, and a text tokenizes
    to the label it equals (else to nothing)."""
    from sampler.engine.filters.dry import TokenTexts

    ids = {name.encode("utf-8"): index for index, name in enumerate(names)}
    return TokenTexts(list(ids), lambda data: [ids[data]] if data in ids else [])
