"""The ``sampler`` command line: a thin layer over the library.

Every command parses its arguments, calls library functions a user could call from Python,
and prints. Bad input becomes one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import click

from sampler.errors import InvalidInputError

__all__ = ["cli", "main"]


class OneLineErrors(click.Group):
    """A click group whose usage and input errors are a single ``error: ...`` line, exit 2."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except (click.ClickException, InvalidInputError) as error:
            message = error.format_message() if isinstance(error, click.ClickException) else error
            click.echo(f"error: {message}", err=True)
            sys.exit(2)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)


def parse_logit(text: str) -> float:
    """One logit from the command line: a finite number or -inf."""
    try:
        value = float(text)
    except ValueError:
        raise InvalidInputError(
            f"logit {text!r} is not a number: give numbers such as 3.0 -1.5 2e-3, or -inf"
        ) from None
    if math.isnan(value) or value == math.inf:
        raise InvalidInputError(
            f"logit {text!r} is not allowed: logits must be finite numbers or -inf (masked)"
        )
    return value


def parse_temperature(text: str) -> float:
    """One temperature from the command line (validated by the core)."""
    from sampler.softmax import check_temperature

    try:
        value = float(text)
    except ValueError:
        raise InvalidInputError(
            f"temperature {text!r} is not a number: use a number >= 0 (0 means hardmax)"
        ) from None
    return check_temperature(value)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sampler")
def cli() -> None:
    """See and measure what decoding does to a next-token distribution."""


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("logits", nargs=-1)
@click.option(
    "-t",
    "--temperature",
    "temperatures",
    multiple=True,
    metavar="T",
    help="Temperature >= 0 (repeatable; 0 = hardmax). Default: 0 0.1 0.5 1 2 5 10.",
)
@click.option("--labels", metavar="A,B,C", help="Comma-separated token names, one per logit.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option(
    "--plot",
    "plot_path",
    metavar="FILE",
    help="Also draw bars and entropy-vs-τ to FILE (.png or .svg).",
)
def softmax(
    logits: tuple[str, ...],
    temperatures: tuple[str, ...],
    labels: str | None,
    as_json: bool,
    plot_path: str | None,
) -> None:
    """Softmax of LOGITS at several temperatures: the cheat sheet.

    With no LOGITS it shows the classic example, logits 3.0 1.0 0.2 labelled A, B, C.
    Negative logits and -inf (a masked token) are fine: sampler softmax 2 -1.5 -inf
    """
    from sampler.cheatsheet import (
        CHEAT_SHEET_LABELS,
        CHEAT_SHEET_LOGITS,
        CHEAT_SHEET_TEMPERATURES,
        cheat_sheet,
        format_cheat_sheet,
    )

    values = [parse_logit(text) for text in logits] or list(CHEAT_SHEET_LOGITS)
    names = labels.split(",") if labels is not None else None
    if names is None and not logits:
        names = list(CHEAT_SHEET_LABELS)
    temps = [parse_temperature(text) for text in temperatures] or list(CHEAT_SHEET_TEMPERATURES)
    if plot_path is not None:
        from sampler.plots.figures import check_figure_path

        check_figure_path(plot_path)  # fail before any output, not after
    sheet = cheat_sheet(values, temps, names)
    if plot_path is not None:
        from sampler.plots.cheatsheet import plot_cheat_sheet

        plot_cheat_sheet(sheet, plot_path)
    if as_json:
        click.echo(json.dumps(sheet, allow_nan=False))
    else:
        click.echo(format_cheat_sheet(sheet))
        if plot_path is not None:
            click.echo(f"\nplot written to {plot_path}")


def main() -> None:
    """Console entry point."""
    cli()


@cli.command()
@click.option("--draws", default=20_000, show_default=True, help="Tokens drawn per case.")
@click.option("--seed", default=0, show_default=True, help="Seed of the draws.")
@click.option(
    "--alpha",
    default=1e-4,
    show_default=True,
    help="Significance level per case (false alarms per case at a correct sampler).",
)
@click.option("--case", "cases", multiple=True, metavar="NAME", help="Run only this case.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def verify(draws: int, seed: int, alpha: float, cases: tuple[str, ...], as_json: bool) -> int:
    """Chi-square test that the engine's draws follow distribution(), case by case.

    Exit code 1 if any case is rejected at --alpha.
    """
    from dataclasses import asdict

    from sampler.verify import run_cases

    if not 0 < alpha < 1:
        raise InvalidInputError(f"alpha={alpha} is out of range: use 0 < alpha < 1")
    results = run_cases(draws=draws, seed=seed, names=cases or None)
    failed = [r.name for r in results if r.p_value < alpha]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "alpha": alpha,
                    "seed": seed,
                    "failed": failed,
                    "cases": [asdict(r) for r in results],
                }
            )
        )
    else:
        width = max(len(r.name) for r in results)
        click.echo(
            f"{'case':<{width}}  {'V':>5} {'kept':>5} {'draws':>7} {'bins':>5} "
            f"{'chi2':>9} {'p-value':>8} {'max|f-p|':>9}  verdict"
        )
        for r in results:
            verdict = "REJECTED" if r.p_value < alpha else "ok"
            click.echo(
                f"{r.name:<{width}}  {r.vocab:>5} {r.support:>5} {r.draws:>7} "
                f"{r.bins:>5} {r.statistic:>9.2f} {r.p_value:>8.4f} "
                f"{r.max_abs_error:>9.5f}  {verdict}"
            )
        click.echo(
            f"\n{len(results) - len(failed)} of {len(results)} cases consistent with "
            f"distribution() at alpha={alpha:g} per case"
        )
    return 1 if failed else 0


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("logits", nargs=-1)
@click.option("--labels", metavar="A,B,C", help="Comma-separated token names, one per logit.")
@click.option("-t", "--temperature", default="1.0", show_default=True, metavar="T")
@click.option("--top-k", default=0, show_default=True, help="0 = off.")
@click.option("--top-p", default=1.0, show_default=True, help="1 = off.")
@click.option("--min-p", default=0.0, show_default=True, help="0 = off.")
@click.option("--typical-p", default=1.0, show_default=True, help="1 = off.")
@click.option("--epsilon", default=0.0, show_default=True, help="0 = off.")
@click.option("--eta", default=0.0, show_default=True, help="0 = off.")
@click.option("--top-n-sigma", default=0.0, show_default=True, help="0 = off.")
@click.option(
    "--mode",
    type=click.Choice(["sample", "greedy", "hardmax"]),
    default="sample",
    show_default=True,
)
@click.option(
    "--order",
    default="hf",
    show_default=True,
    metavar="PRESET|a,b,c|all",
    help="hf, llama.cpp, vllm, a comma-separated stage list, or all three presets.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def chain(
    logits: tuple[str, ...],
    labels: str | None,
    temperature: str,
    order: str,
    as_json: bool,
    **filters: float | int | str,
) -> None:
    """Show what each stage of a sampling chain does to one row of LOGITS.

    With no LOGITS it uses the cheat sheet's 3.0 1.0 0.2. Example, the three peers' orders on
    the same settings: sampler chain 3 2.5 1 0.2 -t 2 --min-p 0.2 --top-k 3 --order all
    """
    from dataclasses import asdict

    from sampler.cheatsheet import CHEAT_SHEET_LABELS, CHEAT_SHEET_LOGITS, default_labels
    from sampler.params import PRESETS, SamplingParams
    from sampler.trace import format_trace, trace_chain

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
    orders = list(PRESETS) if order == "all" else [order]
    traces = {}
    for name in orders:
        stages: str | list[str] = name if name in PRESETS else name.split(",")
        params = SamplingParams(temperature=parse_temperature(temperature), order=stages, **filters)  # type: ignore[arg-type]
        traces[name] = trace_chain(values, params)
    if as_json:
        click.echo(
            json.dumps(
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
        stages_text = " → ".join(
            SamplingParams(order=name if name in PRESETS else name.split(",")).stages
        )
        click.echo(
            ("\n" if index else "") + format_trace(steps, names, f"order {name}: {stages_text}")
        )


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
@click.option("--top-k", default=0, show_default=True, help="0 = off.")
@click.option("--top-p", default=1.0, show_default=True, help="1 = off.")
@click.option("--min-p", default=0.0, show_default=True, help="0 = off.")
@click.option("--repetition-penalty", default=1.0, show_default=True, help="1 = off.")
@click.option(
    "--mode",
    type=click.Choice(["sample", "greedy", "hardmax"]),
    default="sample",
    show_default=True,
)
@click.option("--order", default="hf", show_default=True, help="hf, llama.cpp or vllm.")
@click.option("--max-new-tokens", default=64, show_default=True)
@click.option("--stop", "stops", multiple=True, metavar="TEXT", help="Stop string (repeatable).")
@click.option("--seed", type=int, default=None, help="Seed (default: a random one, reported).")
@click.option("--raw", is_flag=True, help="Send the prompt as is, without the chat template.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
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
    cache_dir: str | None,
    **filters: float,
) -> None:
    """Generate text, streaming it; several -t values and --samples run as one batch."""
    import secrets

    from sampler.generate import GenerationRow
    from sampler.generate import generate as run_generation
    from sampler.params import SamplingParams
    from sampler.sources import load_source

    if samples < 1:
        raise InvalidInputError(f"--samples {samples} is invalid: use 1 or more")
    if max_new_tokens < 1:
        raise InvalidInputError(f"--max-new-tokens {max_new_tokens} is invalid: use 1 or more")
    seed = secrets.randbelow(2**31) if seed is None else seed
    temps = [parse_temperature(text) for text in temperatures] or [1.0]
    rows = [
        GenerationRow(
            prompt,
            SamplingParams(temperature=tau, mode=mode, order=order, seed=seed, **filters),
            sample,
        )  # type: ignore[arg-type]
        for prompt in prompts
        for tau in temps
        for sample in range(samples)
    ]
    source = load_source(model, cache_dir=cache_dir, progress=_progress, quiet=True)
    stream = len(rows) == 1 and not as_json
    completions = run_generation(
        source,
        rows,
        max_new_tokens=max_new_tokens,
        stop=stops,
        chat=False if raw else None,
        on_text=(lambda _row, text: click.echo(text, nl=False)) if stream else None,
    )
    if as_json:
        items = [
            {"model": source.name, "fingerprint": source.fingerprint, "seed": seed, **c.to_dict()}
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
