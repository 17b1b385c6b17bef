"""Commands that use a logit source: generate text, list models."""

from __future__ import annotations

from typing import Any

import click

from sampler.cli import cli, limits, options
from sampler.cli.options import JSON_OPTION
from sampler.engine.defaults import DEFAULT_TEMPERATURE
from sampler.errors import InvalidInputError
from sampler.generation.logprobs import (
    DEFAULT_TOP_LOGPROBS,
    LOGPROB_MODES,
    MAX_TOP_LOGPROBS,
    LogprobRequest,
)
from sampler.json_values import to_json


@cli.command()
@click.option(
    "--prompt",
    "prompts",
    multiple=True,
    required=True,
    metavar="TEXT",
    help="Prompt (repeatable: several prompts run as one batch).",
)
@options.model_option()
@options.dtype_option()
@options.temperatures_option(
    f"Temperature, repeatable: a row each. Default {DEFAULT_TEMPERATURE:g}. Long lists: "
    "temperatures = [...] in a sweep --config TOML."
)
@click.option(
    "--samples",
    type=options.COUNT,
    default=1,
    show_default=True,
    help="Completions per temperature.",
)
@options.sampling_options
@options.order_option()
@click.option("--max-new-tokens", type=options.COUNT, default=64, show_default=True)
@click.option("--stop", "stops", multiple=True, metavar="TEXT", help="Stop string (repeatable).")
@options.ban_phrase_options
@options.seed_option()
@options.raw_option
@JSON_OPTION
@click.option(
    "--logprobs",
    "logprobs_mode",
    type=click.Choice(LOGPROB_MODES),
    default=None,
    help="Per token, its log-probability and the top alternatives' (in --json and the run "
    "log): raw = the model's, processed = after the whole chain, what was sampled from.",
)
@click.option(
    "--top-logprobs",
    type=click.IntRange(0, MAX_TOP_LOGPROBS),
    default=None,
    metavar="N",
    help=f"Alternatives per token with --logprobs (default {DEFAULT_TOP_LOGPROBS}).",
)
@options.db_option
@click.option("--no-log", is_flag=True, help="Do not record the run in the run log.")
@options.cache_option
def generate(
    prompts: tuple[str, ...],
    model: str,
    dtype: str,
    temperatures: tuple[str, ...],
    samples: int,
    mode: str,
    order: str,
    max_new_tokens: int,
    stops: tuple[str, ...],
    ban_phrase_texts: tuple[str, ...],
    ban_phrases_file: str | None,
    seed: int,
    raw: bool,
    as_json: bool,
    logprobs_mode: str | None,
    top_logprobs: int | None,
    db: str | None,
    no_log: bool,
    cache_dir: str | None,
    **settings: Any,
) -> None:
    """Generate text, streaming it; several -t values and --samples run as one batch."""
    from sampler.experiments.config import RunConfig
    from sampler.experiments.runs import planned_rows, save_row, start_run
    from sampler.generation.generation_row import Completion, summary_line
    from sampler.generation.loop import generate as run_generation
    from sampler.sources.base import use_chat

    if top_logprobs is not None and logprobs_mode is None:
        raise InvalidInputError(
            f"--top-logprobs {top_logprobs} goes with --logprobs: give --logprobs raw or processed"
        )
    top = DEFAULT_TOP_LOGPROBS if top_logprobs is None else top_logprobs
    logprobs = None if logprobs_mode is None else LogprobRequest(logprobs_mode, top)
    config = RunConfig(
        model=model,
        dtype=dtype,
        prompts=prompts,
        temperatures=tuple(options.parse_temperatures(temperatures)) or (DEFAULT_TEMPERATURE,),
        samples=samples,
        max_new_tokens=max_new_tokens,
        seed=seed,
        order=order,
        raw=raw,
        stop=stops,
        ban_phrases=options.banned_phrases(ban_phrase_texts, ban_phrases_file) or (),
        mode=mode,
        **settings,
    )
    limits.check_size("generate", config)
    rows = planned_rows("generate", config)
    store = None if no_log else options.open_store(db)
    source = options.load_model(model, cache_dir, dtype)
    limits.check_fits(rows, source, use_chat(source, raw), max_new_tokens)
    run_id = None if store is None else start_run("generate", config, store, source)

    def log(index: int, completion: Completion) -> None:
        if store is not None and run_id is not None:
            save_row(store, run_id, rows, index, completion)

    stream = len(rows) == 1 and not as_json
    completions = run_generation(
        source,
        rows,
        max_new_tokens=max_new_tokens,
        stop=stops,
        chat=use_chat(source, raw),
        on_text=(lambda _row, text: click.echo(text, nl=False)) if stream else None,
        on_finish=log,
        logprobs=logprobs,
        ban_phrases=config.ban_phrases,
    )
    if store is not None:
        store.finish_run(run_id)
    if as_json:
        items = [
            {
                "model": source.name,
                "fingerprint": source.fingerprint,
                "seed": seed,
                "run_id": run_id,
                **c.to_dict(),
            }
            for c in completions
        ]
        click.echo(to_json(items[0] if len(items) == 1 else items))  # inf, NaN: null
        return
    for index, completion in enumerate(completions):
        summary = summary_line(completion, seed)
        if stream:
            click.echo()
            click.echo(f"[{summary}]", err=True)
        else:
            prompt = completion.row.prompt if len(prompts) > 1 else ""
            click.echo(
                ("\n" if index else "") + f"── {summary}" + (f" · {prompt!r}" if prompt else "")
            )
            click.echo(completion.text)
    _grammar_line(completions, run_id, db, stream)


def _grammar_line(
    completions: list[Any], run_id: str | None, db: str | None, stream: bool
) -> None:
    """Under a grammar, what its mask removed (the run's report draws it per step)."""
    import shlex

    from sampler.report.grammar_summary import grammar_summary

    line = grammar_summary(c.steps for c in completions)
    if line is None:
        return
    if run_id is not None:
        where = "" if db is None else f" --db {shlex.quote(db)}"
        line += f"; per step: sampler report {run_id}{where} --format md (grammar.png)"
    click.echo(("" if stream else "\n") + line, err=stream)


@cli.command()
@options.cache_option
@JSON_OPTION
def models(cache_dir: str | None, as_json: bool) -> None:
    """List model aliases, whether they are cached, and their size."""
    from sampler.sources.model_cache import cache_root, model_listing

    root = cache_root(cache_dir)
    listing = model_listing(root)
    if as_json:
        click.echo(to_json({"cache": str(root), "models": listing}))
        return
    click.echo(f"cache: {root}")
    width = max(len(model["alias"]) for model in listing)
    for model in listing:
        where = model["path"] or f"(fetched on first use, ~{model['download_mb']} MB download)"
        size_mib = f"{model['size_bytes'] / 2**20:8.1f} MiB"
        click.echo(
            f"{model['alias']:<{width}} {model['state']:<10} {size_mib}  "
            f"{model['description']}  {where}"
        )
    click.echo(
        "also: any local Hugging Face folder, a hub id (where the hub is reachable), "
        "or synthetic:KIND?key=value (fixed, zipf, gaussian, dirichlet, markov)"
    )
