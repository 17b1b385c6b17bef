"""Commands that use a logit source: generate text, list models."""

from __future__ import annotations

import json

import click

from sampler.cli import cli
from sampler.cli.options import DB_HELP, open_store, parse_temperature, sampling_options
from sampler.errors import InvalidInputError


def _progress(message: str) -> None:
    click.echo(message, err=True)


@cli.command()
@click.option(
    "--prompt",
    "prompts",
    multiple=True,
    required=True,
    metavar="TEXT",
    help="Prompt (repeatable: several prompts run as one batch).",
)
@click.option(
    "--model",
    default="smollm2-135m",
    show_default=True,
    metavar="M",
    help="Alias, local Hugging Face folder, hub id, or synthetic:KIND?key=value.",
)
@click.option(
    "-t",
    "--temperature",
    "temperatures",
    multiple=True,
    metavar="T",
    help="Temperature (repeatable: one row per value). Default 1.0.",
)
@click.option("--samples", default=1, show_default=True, help="Completions per temperature.")
@sampling_options
@click.option("--order", default="hf", show_default=True, help="hf, llama.cpp or vllm.")
@click.option("--max-new-tokens", default=64, show_default=True)
@click.option("--stop", "stops", multiple=True, metavar="TEXT", help="Stop string (repeatable).")
@click.option("--seed", type=int, default=None, help="Seed (default: a random one, reported).")
@click.option("--raw", is_flag=True, help="Send the prompt as is, without the chat template.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--db", default=None, metavar="PATH", help=DB_HELP)
@click.option("--no-log", is_flag=True, help="Do not record the run in the run log.")
@click.option("--cache-dir", default=None, metavar="DIR", help="Model cache folder.")
def generate(
    prompts: tuple[str, ...],
    model: str,
    temperatures: tuple[str, ...],
    samples: int,
    mode: str,
    order: str,
    max_new_tokens: int,
    stops: tuple[str, ...],
    seed: int | None,
    raw: bool,
    as_json: bool,
    db: str | None,
    no_log: bool,
    cache_dir: str | None,
    **filters: float,
) -> None:
    """Generate text, streaming it; several -t values and --samples run as one batch."""
    import secrets

    from sampler.experiments.config import SweepConfig
    from sampler.experiments.runs import planned_rows, save_row, start_run
    from sampler.generation.loop import Completion
    from sampler.generation.loop import generate as run_generation
    from sampler.sources import load_source

    if samples < 1:
        raise InvalidInputError(f"--samples {samples} is invalid: use 1 or more")
    if max_new_tokens < 1:
        raise InvalidInputError(f"--max-new-tokens {max_new_tokens} is invalid: use 1 or more")
    seed = secrets.randbelow(2**31) if seed is None else seed
    temps = tuple(parse_temperature(text) for text in temperatures) or (1.0,)
    config = SweepConfig(
        model=model,
        prompts=prompts,
        temperatures=temps,
        samples=samples,
        max_new_tokens=max_new_tokens,
        seed=seed,
        order=order,
        raw=raw,
        stop=stops,
        mode=mode,
        **filters,
    )  # type: ignore[arg-type]
    rows = planned_rows("generate", config)
    store = None if no_log else open_store(db)
    source = load_source(model, cache_dir=cache_dir, progress=_progress, quiet=True)
    run_id = None if store is None else start_run("generate", config, store, source)

    def log(index: int, completion: Completion) -> None:
        if store is not None:
            save_row(store, run_id, rows, index, completion)  # type: ignore[arg-type]

    stream = len(rows) == 1 and not as_json
    completions = run_generation(
        source,
        rows,
        max_new_tokens=max_new_tokens,
        stop=stops,
        chat=False if raw else None,
        on_text=(lambda _row, text: click.echo(text, nl=False)) if stream else None,
        on_finish=log,
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
        click.echo(json.dumps(items[0] if len(items) == 1 else items))
        return
    for index, completion in enumerate(completions):
        steps = completion.steps
        entropy = sum(s["entropy_final"] for s in steps) / max(len(steps), 1)
        summary = (
            f"τ={completion.row.params.temperature:g} · sample {completion.row.sample} · "
            f"{len(completion.token_ids)} tokens · {completion.finish_reason} · "
            f"mean entropy {entropy:.3f} nats · seed {seed}"
        )
        if stream:
            click.echo()
            click.echo(f"[{summary}]", err=True)
        else:
            prompt = completion.row.prompt if len(prompts) > 1 else ""
            click.echo(
                ("\n" if index else "") + f"── {summary}" + (f" · {prompt!r}" if prompt else "")
            )
            click.echo(completion.text)


@cli.command()
@click.option("--cache-dir", default=None, metavar="DIR", help="Model cache folder.")
def models(cache_dir: str | None) -> None:
    """List model aliases, whether they are cached, and their size."""
    from sampler.sources.model_cache import ALIASES, cache_root, cached_state, model_folder

    root = cache_root(cache_dir)
    click.echo(f"cache: {root}")
    for alias, spec in ALIASES.items():
        state, size = cached_state(alias, root)
        where = model_folder(alias, root) if size else "(fetched on first use, "
        where = f"{where}" if size else f"(fetched on first use, ~{spec.download_mb} MB download)"
        click.echo(f"{alias:<14} {state:<10} {size / 2**20:8.1f} MiB  {spec.description}  {where}")
    click.echo(
        "also: any local Hugging Face folder, a hub id (where the hub is reachable), "
        "or synthetic:KIND?key=value (fixed, zipf, gaussian, dirichlet, markov)"
    )
