"""``sampler analyze``: teacher-forced entropy of a fixed text or a logged completion, at every
token under each temperature, no sampling."""

from __future__ import annotations

import click

from sampler.cli import cli
from sampler.cli.options import (
    COUNT,
    JSON_OPTION,
    cache_option,
    db_option,
    dtype_option,
    load_model,
    logged_row,
    model_option,
    parse_temperatures,
    raw_option,
)
from sampler.errors import InvalidInputError
from sampler.sources import DEFAULT_MODEL


@cli.command()
@click.option("--text", metavar="TEXT", help="A fixed text to analyse.")
@click.option(
    "--prompt",
    metavar="TEXT",
    help="Score --text as the continuation of this prompt, encoded as a sweep encodes it: the "
    "first text token is then scored where a sweep's first step samples.",
)
@raw_option
@click.option("--run", "run_id", metavar="RUN", help="Analyse a logged completion instead.")
@click.option("--row", type=COUNT, default=0, show_default=True, help="Which row of --run.")
@click.option("--temperatures", default="0.3,0.7,1,1.5", show_default=True, metavar="T1,...")
@model_option(default=None, help="Default: the run's model with --run, else the default model.")
@dtype_option(default=None)
@click.option("--plot", "plot_path", metavar="FILE", help="Also draw entropy per position.")
@JSON_OPTION
@db_option
@cache_option
def analyze(
    text: str | None,
    prompt: str | None,
    raw: bool,
    run_id: str | None,
    row: int,
    temperatures: str,
    model: str | None,
    dtype: str | None,
    plot_path: str | None,
    as_json: bool,
    db: str | None,
    cache_dir: str | None,
) -> None:
    """Teacher-forced: the exact entropy at every token under each temperature, no sampling."""
    from sampler.analysis.teacher_forced import analyze_text, analyze_tokens, format_analysis
    from sampler.json_values import to_json
    from sampler.sources.base import use_chat

    if (text is None) == (run_id is None):
        raise InvalidInputError("give exactly one of --text TEXT or --run RUN")
    if prompt is not None and text is None:
        raise InvalidInputError("--prompt goes with --text (a logged run has its own prompt)")
    temps = parse_temperatures(temperatures)
    if plot_path is not None:
        from sampler.files import check_writable_folder
        from sampler.plots.figures import check_figure_path

        check_writable_folder(check_figure_path(plot_path).parent)
    if text is not None:
        source = load_model(model or DEFAULT_MODEL, cache_dir, dtype or "float32")
        chat = prompt is not None and use_chat(source, raw)
        result = analyze_text(source, text, temps, prompt=prompt, chat=chat)
    else:
        run, chosen = logged_row(db, run_id, row)
        run_dtype = run["config"].get("dtype", "float32") if model is None else "float32"
        source = load_model(model or run["model"], cache_dir, dtype or run_dtype)
        chat = use_chat(source, run["config"].get("raw", False))
        result = analyze_tokens(
            source, source.encode(chosen["prompt"], chat), chosen["token_ids"], temps
        )
    if plot_path is not None:
        from sampler.plots.teacher_forced_plot import plot_analysis

        plot_analysis(result, plot_path)
    if as_json:
        click.echo(
            to_json(
                {
                    "temperatures": result.temperatures,
                    "tokens": result.labels,
                    "entropy": result.entropy.tolist(),
                    "surprisal": result.surprisal.tolist(),
                    "mean_entropy": result.mean_entropy().tolist(),
                }
            )
        )
    else:
        click.echo(format_analysis(result))
