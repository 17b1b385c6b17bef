"""``sampler reproduce``: one claim of the sampling literature, measured on a model, reported."""

from __future__ import annotations

from pathlib import Path

import click

from sampler.cli import cli
from sampler.cli.options import cache_option, db_option, model_option
from sampler.errors import InvalidInputError


def _listing() -> str:
    from sampler.papers import EXPERIMENTS, experiment

    lines = []
    for name in EXPERIMENTS:
        chosen = experiment(name)
        lines += [f"{name}: {chosen.title}", f"  {chosen.reference.cite()}"]
        if chosen.scale_note:
            lines.append(f"  --scale N: {chosen.scale_note}")
    return "\n".join(lines)


@cli.command()
@click.argument("name", required=False, metavar="[NAME]")
@click.option("--list", "show_list", is_flag=True, help="List the experiments and exit.")
@click.option(
    "--scale",
    type=click.IntRange(min=1, max=64),
    default=1,
    show_default=True,
    help="Grow the grid N-fold (prompts, documents, tokens; each experiment says which).",
)
@model_option(default=None, help="Model (default: the experiment's, SmolLM2-135M on llama.cpp).")
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=0, show_default=True)
@click.option(
    "--out",
    "out_dir",
    metavar="DIR",
    help="Report folder (default: reproductions/NAME). Nothing is written outside it.",
)
@db_option
@cache_option
def reproduce(
    name: str | None,
    show_list: bool,
    scale: int,
    model: str | None,
    seed: int,
    out_dir: str | None,
    db: str | None,
    cache_dir: str | None,
) -> None:
    """Reproduce a claim of the sampling literature: figures, 95 % intervals and a verdict.

    Writes report.md (beside its PNGs), report.html and result.json; the generations it makes
    are logged in the run log.
    """
    if show_list:
        click.echo(_listing())
        return
    if name is None:
        raise InvalidInputError("name an experiment, e.g. sampler reproduce top-n-sigma (--list)")
    from sampler.papers import experiment, run_experiment
    from sampler.papers.records import Options

    experiment(name)  # an unknown name fails before any model loads
    options = Options(
        model=model,
        scale=scale,
        seed=seed,
        out=Path(out_dir) if out_dir else None,
        db=db,
        cache_dir=cache_dir,
        progress=lambda line: click.echo(line, err=True),
    )
    ran = run_experiment(name, options)
    for finding in ran.outcome.findings:
        click.echo(f"{finding.verdict:>15}  {finding.statement}: {finding.estimate.shown()}")
    click.echo(f"verdict: {ran.outcome.verdict}")
    click.echo(
        f"wall {ran.meta['wall time (s)']} s, CPU {ran.meta['CPU time (s)']} s, load "
        f"{ran.meta['load average before (1, 5, 15 min)']} → {ran.meta['load average after']}"
    )
    click.echo(f"report written to {ran.written[-3]}")
