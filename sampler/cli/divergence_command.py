"""``sampler divergence``: two settings, orders or models, token by token (teacher-forced)."""

from __future__ import annotations

import json
from typing import Any

import click

from sampler.analysis.divergence_format import format_orders, format_pair, pair_record
from sampler.cli import cli
from sampler.cli.options import (
    cache_option,
    db_option,
    dtype_option,
    load_model,
    logged_row,
    model_option,
    parse_temperature,
    sampling_options,
)
from sampler.engine.params import DEFAULT_ORDER, SamplingParams
from sampler.engine.presets import PRESETS
from sampler.engine.stages import SETTINGS
from sampler.errors import InvalidInputError
from sampler.sources import DEFAULT_MODEL

VS_EXAMPLE = "e.g. --vs order=llama.cpp --vs temperature=0.7"


def parse_vs(items: tuple[str, ...], base: SamplingParams) -> SamplingParams:
    """Side B: ``base`` with ``KEY=VALUE`` items applied, validated by ``SamplingParams``.

    Numbers are converted when they parse; anything else goes to ``SamplingParams`` as text,
    so that a bad value is refused by the engine's own one-line rule for that field.
    """
    from dataclasses import fields, replace

    known = [f.name for f in fields(SamplingParams)]
    changes: dict[str, Any] = {}
    for item in items:
        key, equals, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not equals:
            raise InvalidInputError(f"--vs {item!r} is not KEY=VALUE: {VS_EXAMPLE}")
        if key not in known:
            raise InvalidInputError(
                f"--vs key {key!r} is not a SamplingParams field: use one of {', '.join(known)}"
            )
        if key == "logit_bias":
            token, _, bias = text.partition("=")
            try:
                changes.setdefault(key, {})[int(token)] = float(bias)
            except ValueError:
                raise InvalidInputError(
                    f"--vs {item!r} is not logit_bias=ID=BIAS: give e.g. --vs logit_bias=7=-100"
                ) from None
            continue
        if key in changes:
            raise InvalidInputError(f"--vs {key} is given twice: give it once")
        changes[key] = _vs_value(key, text.strip())
    return replace(base, **changes)


def _vs_value(key: str, text: str) -> Any:
    if key == "order":
        return text.split(",") if "," in text else text
    if key == "seed" and text.lower() == "none":
        return None
    kind = SETTINGS[key].kind if key in SETTINGS and key != "temperature" else None
    if key in ("seed", "min_tokens_to_keep") or kind is int:
        try:
            return int(text)
        except ValueError:
            return text
    if kind is float:
        try:
            return float(text)
        except ValueError:
            return text
    return text  # temperature (the one temperature rule parses text) and mode


def _side_a(
    temperature: float, order: str, settings: dict[str, Any]
) -> tuple[SamplingParams, list[str]]:
    """Side A's settings, and with ``--order all`` the presets compared (else ``[]``).

    Under ``all`` the settings are first checked in a chain holding every stage, so that a
    stage some preset lacks leaves that preset out (a note on stderr), not the command.
    """
    if order != "all":
        return SamplingParams(temperature=temperature, order=order, **settings), []
    from sampler.analysis.divergence_compare import missing_stages
    from sampler.engine.stages import STAGE_NAMES

    every = SamplingParams(temperature=temperature, order=list(STAGE_NAMES), **settings)
    missing = missing_stages(every)
    orders = [name for name in PRESETS if not missing[name]]
    if len(orders) < 2:
        raise InvalidInputError(
            f"fewer than two presets have every stage you set ({', '.join(orders) or 'none'}): "
            "nothing to compare"
        )
    for name, stages in missing.items():
        if stages:
            click.echo(f"note: {name} left out: its chain has no {', '.join(stages)}", err=True)
    return SamplingParams(temperature=temperature, order=orders[0], **settings), orders


@cli.command()
@click.option("--text", metavar="TEXT", help="A fixed text to force through both sides.")
@click.option("--prompt", metavar="TEXT", help="Score all of --text after this prompt.")
@click.option("--raw", is_flag=True, help="With --prompt: no chat template.")
@click.option("--run", "run_id", metavar="RUN", help="Force a logged completion instead.")
@click.option("--row", type=click.IntRange(min=0), default=0, show_default=True)
@model_option(
    default=None, help=f"Side A's model. Default: the run's with --run, else {DEFAULT_MODEL}."
)
@dtype_option(default=None)
@click.option(
    "-t", "--temperature", "temperature_text", default="1", show_default=True, metavar="T"
)
@sampling_options
@click.option(
    "--order",
    type=click.Choice([*PRESETS, "all"]),
    default=DEFAULT_ORDER,
    show_default=True,
    help="Side A's chain order; all: every preset against each other.",
)
@click.option(
    "--vs",
    "vs_items",
    multiple=True,
    metavar="KEY=VALUE",
    help=f"Side B: side A's settings with this change (repeatable), {VS_EXAMPLE}.",
)
@click.option("--vs-model", metavar="M", help="Side B runs on this model (same tokens).")
@click.option("--plot", "plot_path", metavar="FILE", help="Also draw TV and KL per position.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@db_option
@cache_option
def divergence(
    text: str | None,
    prompt: str | None,
    raw: bool,
    run_id: str | None,
    row: int,
    model: str | None,
    dtype: str | None,
    temperature_text: str,
    order: str,
    vs_items: tuple[str, ...],
    vs_model: str | None,
    plot_path: str | None,
    as_json: bool,
    db: str | None,
    cache_dir: str | None,
    **settings: Any,
) -> None:
    """Teacher-forced: how far two samplers' next-token laws are apart at every token.

    Per position: KL both ways, total variation, the chance both draw the same token (1 − TV)
    and whether their kept sets differ. Example: sampler divergence --text "The quick brown
    fox" --top-k 3 --min-p 0.2 -t 2 --order all
    """
    from sampler.analysis import divergence as div
    from sampler.analysis import divergence_compare as compare
    from sampler.analysis.teacher_forced import forced_ids
    from sampler.sources.base import use_chat

    if (text is None) == (run_id is None):
        raise InvalidInputError("give exactly one of --text TEXT or --run RUN")
    if prompt is not None and text is None:
        raise InvalidInputError("--prompt goes with --text (a logged run has its own prompt)")
    if order == "all" and (vs_items or vs_model):
        raise InvalidInputError(
            "--order all compares the presets with each other: drop --vs "
            "and --vs-model, or choose one --order"
        )
    if order != "all" and not (vs_items or vs_model):
        raise InvalidInputError(
            "nothing to compare: give --vs KEY=VALUE, --vs-model M, or --order all"
        )
    if plot_path is not None:
        from sampler.files import check_writable_folder
        from sampler.plots.figures import check_figure_path

        check_writable_folder(check_figure_path(plot_path).parent)
    params_a, orders = _side_a(parse_temperature(temperature_text), order, settings)
    params_b = parse_vs(vs_items, params_a)
    for params in (params_a, params_b):
        div.check_forcible(params)  # before a model loads

    if run_id is not None:
        run, chosen = logged_row(db, run_id, row)
        run_dtype = run["config"].get("dtype", "float32") if model is None else "float32"
        source = load_model(model or run["model"], cache_dir, dtype or run_dtype)
        raw = run["config"].get("raw", False)  # the prompt as the run encoded it
    else:
        source = load_model(model or DEFAULT_MODEL, cache_dir, dtype or "float32")
    source_b = load_model(vs_model, cache_dir, dtype or "float32") if vs_model else None

    def context_of(src: Any) -> list[int]:
        return src.encode(chosen["prompt"], use_chat(src, raw))

    if text is not None and orders:
        context, targets = forced_ids(source, text, prompt, use_chat(source, raw))
        results = compare.order_divergences(source, params_a, context, targets, orders)
    elif text is not None:
        results = [compare.divergence_text(source, text, params_a, params_b, prompt, raw, source_b)]
    elif orders:
        targets = list(chosen["token_ids"])
        results = compare.order_divergences(source, params_a, context_of(source), targets, orders)
    else:
        context_b = context_of(source_b) if source_b is not None else None
        ids = list(chosen["token_ids"])
        results = [
            compare.divergence_tokens(
                source, params_a, params_b, context_of(source), ids, source_b, context_b
            )
        ]
    if plot_path is not None:
        from sampler.plots.divergence_plot import plot_divergence

        plot_divergence(results, plot_path)
    if as_json:
        record: dict[str, Any] = {"tokens": results[0].labels}
        if orders:
            record["orders"] = {name: list(PRESETS[name]) for name in orders}
        record["pairs"] = [pair_record(result) for result in results]
        click.echo(json.dumps(record, allow_nan=False))
    elif orders:
        click.echo(format_orders(results, orders))
    else:
        click.echo(format_pair(results[0]))
    if plot_path is not None and not as_json:
        click.echo(f"\nplot written to {plot_path}")
