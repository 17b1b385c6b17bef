"""Commands that run experiments on a model: sweep and compare (teacher-forced ``analyze`` is in
:mod:`sampler.cli.analyze_command`)."""

from __future__ import annotations

from typing import Any

import click
from click.core import ParameterSource

from sampler.cli import cli, limits
from sampler.cli.experiment_output import (
    all_columns_option,
    print_comparison_json,
    print_results,
)
from sampler.cli.options import (
    COUNT,
    JSON_OPTION,
    ban_phrase_options,
    banned_phrases,
    cache_option,
    db_option,
    dtype_option,
    load_model,
    model_option,
    open_store,
    order_option,
    parse_temperature,
    parse_temperatures,
    raw_option,
    sampling_options,
    seed_option,
    temperature_option,
)
from sampler.cli.sweep_run import (
    ray_options,
    ray_settings,
    resume_on_ray,
    run_with_progress,
    sweep_on_ray,
)
from sampler.errors import InvalidInputError
from sampler.sources import DEFAULT_MODEL


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
@click.option(
    "--temperatures",
    metavar="T1,T2,...",
    help="Comma-separated; 0 = greedy. Long lists: temperatures = [...] in the --config TOML "
    "(at most 10000).",
)
@click.option("--samples", type=COUNT, help="Completions per prompt and temperature.")
@model_option(default=None, help="Default: the config's, else the default model.")
@dtype_option(default=None)
@click.option("--max-new-tokens", type=COUNT)
@seed_option(default=None, help="Seed, or 'random'. Default: the config's, else 0.")
@order_option(default=None)
@click.option(
    "--raw",
    "--no-chat-template",
    "raw",
    is_flag=True,
    default=None,
    help="Send the prompts as they are, without the chat template.",
)
@click.option("--batch-size", type=COUNT, help="Rows per batch (memory bound).")
@sampling_options
@ban_phrase_options
@click.option("--resume", "resume_id", metavar="RUN", help="Finish an interrupted run (any kind).")
@ray_options
@all_columns_option
@JSON_OPTION
@db_option
@cache_option
@click.pass_context
def sweep(
    ctx: click.Context,
    config_path: str | None,
    prompts_file: str | None,
    ban_phrase_texts: tuple[str, ...],
    ban_phrases_file: str | None,
    resume_id: str | None,
    ray_address: str | None,
    actors_per_node: int | None,
    threads_per_actor: int | None,
    all_columns: bool,
    as_json: bool,
    db: str | None,
    cache_dir: str | None,
    **settings: Any,
) -> None:
    """Generate at many temperatures in one batch, log every row, print the table and texts."""
    from sampler.experiments.cluster import split_executor
    from sampler.experiments.config import RunConfig, load_config, read_prompts
    from sampler.experiments.runs import (
        planned_rows,
        resume_config,
        run_kind,
        run_rows,
        start_run,
    )
    from sampler.sources.base import use_chat

    overrides = {name: value for name, value in settings.items() if _given(ctx, name)}
    if "prompts" in overrides or prompts_file:
        overrides["prompts"] = list(settings["prompts"]) + (
            read_prompts(prompts_file) if prompts_file else []
        )
    if "temperatures" in overrides:
        overrides["temperatures"] = parse_temperatures(settings["temperatures"])
    phrases = banned_phrases(ban_phrase_texts, ban_phrases_file)
    if phrases is not None:  # the command line's replace the config's, as other keys do
        overrides["ban_phrases"] = phrases
    if resume_id is not None:
        if overrides or config_path:
            raise InvalidInputError(
                "--resume takes the run's own settings: give only --db and --cache-dir with it"
            )
        store = open_store(db, create=False)
        run = store.get_run(resume_id)
        run_kind(run["kind"])  # before loading a model for a run this sampler cannot plan
        on_ray = ray_settings(ray_address, actors_per_node, threads_per_actor)
        if on_ray is not None:
            return resume_on_ray(store, run, on_ray, cache_dir, all_columns, as_json)
        saved = run["config"]
        source = load_model(
            saved.get("model", DEFAULT_MODEL), cache_dir, saved.get("dtype", "float32")
        )
        kind, run_id = run["kind"], run["id"]
        config = resume_config(store, run_id, source)
    else:
        origin = config_path or "options"
        from_config, data = split_executor(load_config(config_path) if config_path else {}, origin)
        on_ray = ray_settings(ray_address, actors_per_node, threads_per_actor, from_config)
        config = RunConfig.from_dict(data | overrides, origin=origin)
        limits.check_size("sweep", config)
        if on_ray is not None:

            def check(source: Any) -> None:  # on an actor, where the model is loaded
                rows = planned_rows("sweep", config)
                limits.check_fits(rows, source, use_chat(source, config.raw), config.max_new_tokens)

            return sweep_on_ray(config, on_ray, db, cache_dir, check, all_columns, as_json)
        store = open_store(db)  # after the config is checked: a bad one creates no run log
        source = load_model(config.model, cache_dir, config.dtype)
        kind = "sweep"
        limits.check_fits(
            planned_rows(kind, config), source, use_chat(source, config.raw), config.max_new_tokens
        )
        run_id = start_run(kind, config, store, source)
    run_with_progress(
        kind, config, store, run_id, source.name,
        lambda progress: run_rows(
            kind, config, store, run_id, source, on_step=progress.step, on_row=progress.row
        ),
    )
    print_results(store, run_id, source, all_columns, as_json)


@cli.command()
@click.option("--prompt", required=True, metavar="TEXT")
@temperature_option()
@click.option(
    "--samples", type=COUNT, default=4, show_default=True, help="Sampled rows beside greedy."
)
@model_option()
@dtype_option()
@click.option("--max-new-tokens", type=COUNT, default=48, show_default=True)
@seed_option()
@order_option()
@sampling_options
@ban_phrase_options
@raw_option
@db_option
@click.option("--no-log", is_flag=True, help="Do not record the run.")
@JSON_OPTION
@cache_option
def compare(
    prompt: str,
    temperature_text: str,
    samples: int,
    model: str,
    dtype: str,
    max_new_tokens: int,
    seed: int,
    raw: bool,
    ban_phrase_texts: tuple[str, ...],
    ban_phrases_file: str | None,
    db: str | None,
    no_log: bool,
    as_json: bool,
    cache_dir: str | None,
    **settings: Any,
) -> None:
    """Greedy against N samples: where each leaves the greedy path, and how often it agrees."""
    from sampler.experiments.config import RunConfig
    from sampler.experiments.runs import planned_rows, save_row, start_run
    from sampler.generation.compare import compare as run_compare
    from sampler.generation.compare import format_comparison
    from sampler.sources.base import use_chat

    temperature = parse_temperature(temperature_text)
    config = RunConfig(
        model=model,
        dtype=dtype,
        prompts=(prompt,),
        temperatures=(0.0, temperature) if temperature else (0.0,),
        samples=samples,
        max_new_tokens=max_new_tokens,
        seed=seed,
        raw=raw,
        ban_phrases=banned_phrases(ban_phrase_texts, ban_phrases_file) or (),
        **settings,
    )
    limits.check_size("compare", config)
    rows = planned_rows("compare", config)  # greedy at 0, sample i at 1 + i
    store = None if no_log else open_store(db)
    source = load_model(model, cache_dir, dtype)
    limits.check_fits(rows, source, use_chat(source, raw), max_new_tokens)
    # Recorded before generating, so an interrupted compare can be finished by --resume.
    run_id = None if store is None else start_run("compare", config, store, source)
    greedy, comparisons = run_compare(
        source,
        prompt,
        config.params(temperature),
        samples,
        max_new_tokens,
        chat=use_chat(source, raw),
        ban_phrases=config.ban_phrases,
    )
    if store is not None and run_id is not None:
        for index, completion in enumerate([greedy, *(c.completion for c in comparisons)]):
            save_row(store, run_id, rows, index, completion)
        store.finish_run(run_id)
    if as_json:
        print_comparison_json(store, run_id, source, config, greedy, comparisons)
        return
    click.echo(format_comparison(greedy, comparisons))
    if run_id is not None:
        click.echo(f"run id: {run_id}")
