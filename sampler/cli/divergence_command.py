"""``sampler divergence``: two settings, orders or models, token by token (teacher-forced)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from sampler.analysis.divergence_format import divergence_record, format_divergences
from sampler.analysis.divergence_plan import VS_EXAMPLE
from sampler.cli import cli
from sampler.cli.options import (
    JSON_OPTION,
    cache_option,
    complete_model,
    db_option,
    dtype_option,
    load_model,
    logged_row,
    model_option,
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


@cli.command()
@click.option("--text", metavar="TEXT", help="A fixed text to force through both sides.")
@click.option("--prompt", metavar="TEXT", help="Score all of --text after this prompt.")
@raw_option
@click.option("--run", "run_id", metavar="RUN", help="Force a logged completion instead.")
@click.option("--row", type=click.IntRange(min=0), default=0, show_default=True)
@model_option(
    default=None, help=f"Side A's model. Default: the run's with --run, else {DEFAULT_MODEL}."
)
@dtype_option(default=None)
@temperature_option()
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
@click.option(
    "--vs-model",
    metavar="M",
    help="Side B runs on this model (same tokens).",
    shell_complete=complete_model,
)
@click.option("--plot", "plot_path", metavar="FILE", help="Also draw TV and KL per position.")
@JSON_OPTION
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
    from sampler.analysis.divergence_plan import compare_sides, plan_sides

    _check_flags(text, prompt, run_id, order, vs_items, vs_model)
    if plot_path is not None:
        from sampler.files import check_writable_folder
        from sampler.plots.figures import check_figure_path

        check_writable_folder(check_figure_path(plot_path).parent)
    sides = plan_sides(parse_temperature(temperature_text), order, settings, vs_items, _note)
    chosen = None
    if run_id is not None:
        run, chosen = logged_row(db, run_id, row)
        run_dtype = run["config"].get("dtype", "float32") if model is None else "float32"
        source = load_model(model or run["model"], cache_dir, dtype or run_dtype)
        raw = run["config"].get("raw", False)  # the prompt as the run encoded it
    else:
        source = load_model(model or DEFAULT_MODEL, cache_dir, dtype or "float32")
    source_b = load_model(vs_model, cache_dir, dtype or "float32") if vs_model else None
    with position_bar() as progress:
        results = compare_sides(
            source,
            sides,
            raw,
            text=text,
            prompt=prompt,
            logged=chosen,
            source_b=source_b,
            progress=progress,
        )
    if plot_path is not None:
        from sampler.plots.divergence_plot import plot_divergence

        plot_divergence(results, plot_path)
    if as_json:
        click.echo(to_json(divergence_record(results, sides.orders)))  # inf, NaN: null
        return
    click.echo(format_divergences(results, sides.orders))
    if plot_path is not None:
        click.echo(f"\nplot written to {plot_path}")


@contextlib.contextmanager
def position_bar() -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` that draws the forced positions as a bar on stderr."""
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label="positions", file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)

    try:
        yield progress
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


def _note(message: str) -> None:
    click.echo(message, err=True)


def _check_flags(
    text: str | None,
    prompt: str | None,
    run_id: str | None,
    order: str,
    vs_items: tuple[str, ...],
    vs_model: str | None,
) -> None:
    """The flags name one comparison: a text or a run, and something to compare with."""
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
