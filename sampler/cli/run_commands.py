"""Commands that log runs: sweep and compare; and the log itself: runs, export."""

from __future__ import annotations

import sys
from typing import Any

import click
from click.core import ParameterSource

from sampler.cli import cli
from sampler.cli.options import DB_HELP, open_store, parse_temperature, sampling_options
from sampler.errors import InvalidInputError


def _progress(message: str) -> None:
    click.echo(message, err=True)


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE


@cli.command()
@click.option("--config", "config_path", metavar="FILE", help="TOML config (configs/*.toml).")
@click.option("--prompt", "prompts", multiple=True, metavar="TEXT", help="Prompt (repeatable).")
@click.option(
    "--prompts",
    "prompts_file",
    metavar="FILE",
    help='Prompts, one per line or JSONL {"prompt": ...}.',
)
@click.option("--temperatures", metavar="T1,T2,...", help="Comma-separated; 0 = greedy.")
@click.option("--samples", type=int, help="Completions per prompt and temperature.")
@click.option("--model", metavar="M", help="Alias, folder, hub id or synthetic:KIND?...")
@click.option("--max-new-tokens", type=int)
@click.option("--seed", type=int)
@click.option("--order", help="hf, llama.cpp or vllm.")
@click.option("--raw", is_flag=True, default=None, help="No chat template.")
@click.option("--batch-size", type=int, help="Rows per batch (memory bound).")
@sampling_options
@click.option("--resume", "resume_id", metavar="RUN", help="Finish an interrupted run.")
@click.option("--db", default=None, metavar="PATH", help=DB_HELP)
@click.option("--cache-dir", default=None, metavar="DIR", help="Model cache folder.")
@click.pass_context
def sweep(
    ctx: click.Context,
    config_path: str | None,
    prompts_file: str | None,
    resume_id: str | None,
    db: str | None,
    cache_dir: str | None,
    **settings: Any,
) -> None:
    """Generate at many temperatures in one batch, log every row, print the summary table."""
    from sampler.cli.options import parse_temperatures
    from sampler.experiments.config import SweepConfig, load_config, read_prompts
    from sampler.experiments.runs import (
        missing_rows,
        planned_rows,
        resume_config,
        run_kind,
        run_rows,
        start_run,
    )
    from sampler.report.summary import format_summary, summarize
    from sampler.sources import load_source

    overrides = {name: value for name, value in settings.items() if _given(ctx, name)}
    if "prompts" in overrides or prompts_file:
        overrides["prompts"] = list(settings["prompts"]) + (
            read_prompts(prompts_file) if prompts_file else []
        )
    if "temperatures" in overrides:
        overrides["temperatures"] = parse_temperatures(settings["temperatures"])
    store = open_store(db)
    if resume_id is not None:
        if overrides or config_path:
            raise InvalidInputError(
                "--resume takes the run's own settings: give only --db and --cache-dir with it"
            )
        run = store.get_run(resume_id)
        run_kind(run["kind"])  # before loading a model for a run this sampler cannot plan
        source = load_source(
            run["config"].get("model", "smollm2-135m"),
            cache_dir=cache_dir,
            progress=_progress,
            quiet=True,
        )
        kind, run_id = run["kind"], run["id"]
        config = resume_config(store, run_id, source)
    else:
        data = load_config(config_path) if config_path else {}
        config = SweepConfig.from_dict(data | overrides, origin=config_path or "options")
        source = load_source(config.model, cache_dir=cache_dir, progress=_progress, quiet=True)
        kind = "sweep"
        run_id = start_run(kind, config, store, source)
    rows = len(planned_rows(kind, config))
    todo = len(missing_rows(kind, config, store, run_id))
    click.echo(
        f"run {run_id} ({kind}): {rows} rows ({rows - todo} already done) × up to "
        f"{config.max_new_tokens} tokens, model {source.name}",
        err=True,
    )
    with click.progressbar(
        length=todo * config.max_new_tokens, label="tokens", file=sys.stderr
    ) as bar:
        run_rows(kind, config, store, run_id, source, on_step=lambda _s, live: bar.update(live))
    click.echo(format_summary(summarize(store.completions(run_id))))
    click.echo(f"\nrun id: {run_id}   (sampler report {run_id} --format html)")


@cli.command()
@click.option("--prompt", required=True, metavar="TEXT")
@click.option(
    "-t", "--temperature", "temperature_text", default="0.8", show_default=True, metavar="T"
)
@click.option("--samples", default=4, show_default=True)
@click.option("--model", default="smollm2-135m", show_default=True, metavar="M")
@click.option("--max-new-tokens", default=48, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--order", default="hf", show_default=True)
@click.option("--raw", is_flag=True, help="No chat template.")
@click.option("--db", default=None, metavar="PATH", help=DB_HELP)
@click.option("--no-log", is_flag=True, help="Do not record the run.")
@click.option("--cache-dir", default=None, metavar="DIR")
def compare(
    prompt: str,
    temperature_text: str,
    samples: int,
    model: str,
    max_new_tokens: int,
    seed: int,
    order: str,
    raw: bool,
    db: str | None,
    no_log: bool,
    cache_dir: str | None,
) -> None:
    """Greedy against N samples: where each leaves the greedy path, and how often it agrees."""
    from sampler.experiments.config import SweepConfig
    from sampler.experiments.runs import planned_rows, save_row, start_run
    from sampler.generation.compare import compare as run_compare
    from sampler.sources import load_source

    temperature = parse_temperature(temperature_text)
    if samples < 1 or max_new_tokens < 1:
        raise InvalidInputError("--samples and --max-new-tokens must be 1 or more")
    config = SweepConfig(
        model=model,
        prompts=(prompt,),
        temperatures=(0.0, temperature) if temperature else (0.0,),
        samples=samples,
        max_new_tokens=max_new_tokens,
        seed=seed,
        order=order,
        raw=raw,
    )
    rows = planned_rows("compare", config)  # greedy at 0, sample i at 1 + i
    store = None if no_log else open_store(db)
    source = load_source(model, cache_dir=cache_dir, progress=_progress, quiet=True)
    # Recorded before generating, so an interrupted compare can be finished by --resume.
    run_id = None if store is None else start_run("compare", config, store, source)
    greedy, comparisons = run_compare(
        source,
        prompt,
        config.params(temperature),
        samples,
        max_new_tokens,
        chat=False if raw else None,
    )
    if store is not None and run_id is not None:
        for index, completion in enumerate([greedy, *(c.completion for c in comparisons)]):
            save_row(store, run_id, rows, index, completion)
        store.finish_run(run_id)
    click.echo(f"greedy (τ=0) · {len(greedy.token_ids)} tokens\n{greedy.text}\n")
    for item in comparisons:
        where = (
            "never leaves the greedy path"
            if item.divergence_step is None
            else f"leaves the greedy path at step {item.divergence_step}"
            + (
                f" (entropy {item.entropy_at_divergence:.3f} nats; greedy "
                f"{item.greedy_token!r}, sampled {item.sampled_token!r})"
                if item.entropy_at_divergence is not None
                else ""
            )
        )
        click.echo(
            f"── sample {item.completion.row.sample} (τ={temperature:g}): {where}; "
            f"{item.argmax_rate:.0%} of its tokens were the argmax\n"
            f"{item.completion.text}\n"
        )
    if run_id is not None:
        click.echo(f"run id: {run_id}")


@cli.command()
@click.option("--db", default=None, metavar="PATH", help=DB_HELP)
@click.option("--limit", default=20, show_default=True)
def runs(db: str | None, limit: int) -> None:
    """List logged runs, newest first."""
    from sampler.tables import aligned_table

    listed = open_store(db).list_runs(limit=limit)
    if not listed:
        click.echo("no runs yet: sampler sweep runs one")
        return
    body = [
        [
            r["id"],
            r["created_at"][:19],
            r["kind"],
            r["model"],
            r["status"],
            f"{r['rows_done']}/{r['total_rows']}",
        ]
        for r in listed
    ]
    click.echo(
        "\n".join(aligned_table(["run", "created (UTC)", "kind", "model", "status", "rows"], body))
    )


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@click.option("--db", default=None, metavar="PATH", help=DB_HELP)
def export(run_id: str, fmt: str, db: str | None) -> None:
    """Write a run to stdout: JSONL (one completion a line) or CSV (one step a line)."""
    from sampler.runlog.export import export_run

    count = export_run(open_store(db), run_id, fmt, sys.stdout)
    click.echo(f"{count} records", err=True)


@cli.command()
@click.option("--text", metavar="TEXT", help="A fixed text to analyse (raw, no chat template).")
@click.option("--run", "run_id", metavar="RUN", help="Analyse a logged completion instead.")
@click.option("--row", default=0, show_default=True, help="Which row of --run.")
@click.option("--temperatures", default="0.3,0.7,1,1.5", show_default=True, metavar="T1,...")
@click.option("--model", default=None, metavar="M", help="Default: smollm2-135m, or the run's.")
@click.option("--plot", "plot_path", metavar="FILE", help="Also draw entropy per position.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--db", default=None, metavar="PATH", help=DB_HELP)
@click.option("--cache-dir", default=None, metavar="DIR")
def analyze(
    text: str | None,
    run_id: str | None,
    row: int,
    temperatures: str,
    model: str | None,
    plot_path: str | None,
    as_json: bool,
    db: str | None,
    cache_dir: str | None,
) -> None:
    """Teacher-forced: the exact entropy at every token under each temperature, no sampling."""
    import json

    from sampler.cli.options import parse_temperatures
    from sampler.generation.teacher_forced import analyze_text, analyze_tokens, format_analysis
    from sampler.sources import load_source

    if (text is None) == (run_id is None):
        raise InvalidInputError("give exactly one of --text TEXT or --run RUN")
    temps = parse_temperatures(temperatures)
    if plot_path is not None:
        from sampler.report.plots.figures import check_figure_path

        check_figure_path(plot_path)
    if text is not None:
        source = load_source(
            model or "smollm2-135m", cache_dir=cache_dir, progress=_progress, quiet=True
        )
        result = analyze_text(source, text, temps)
    else:
        store = open_store(db)
        run = store.get_run(run_id)
        completions = store.completions(run["id"], with_steps=False)
        if not 0 <= row < len(completions):
            raise InvalidInputError(
                f"--row {row} is out of range: run {run['id']} has "
                f"{len(completions)} stored rows (0..{len(completions) - 1})"
            )
        chosen = completions[row]
        source = load_source(
            model or run["model"], cache_dir=cache_dir, progress=_progress, quiet=True
        )
        chat = not run["config"].get("raw", False) and source.is_chat
        result = analyze_tokens(
            source, source.encode(chosen["prompt"], chat), chosen["token_ids"], temps
        )
    if plot_path is not None:
        from sampler.report.plots.teacher_forced_plot import plot_analysis

        plot_analysis(result, plot_path)
    if as_json:
        click.echo(
            json.dumps(
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


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "md", "html"]),
    default="table",
    show_default=True,
)
@click.option(
    "--out",
    "out_dir",
    metavar="DIR",
    help="Folder for md/html (default: reports/RUN). Nothing is written outside it.",
)
@click.option("--db", default=None, metavar="PATH", help=DB_HELP)
def report(run_id: str, fmt: str, out_dir: str | None, db: str | None) -> None:
    """Per-temperature summary of a run: a table, or Markdown / one self-contained HTML page."""
    from sampler.report.summary import format_summary, summarize

    store = open_store(db)
    run = store.get_run(run_id)
    completions = store.completions(run["id"])
    if not completions:
        raise InvalidInputError(f"run {run['id']} has no finished rows yet")
    if fmt == "table":
        click.echo(
            f"run {run['id']} · {run['kind']} · {run['model']} · "
            f"{len(completions)}/{run['total_rows']} rows"
        )
        click.echo(format_summary(summarize(completions)))
        return
    from pathlib import Path

    from sampler.report.pages import write_report

    target = write_report(run, completions, fmt, Path(out_dir or Path("reports") / run["id"]))
    click.echo(f"report written to {target}")
