"""Commands on logits alone (numpy only): softmax cheat sheet, verification (the chain trace:
:mod:`sampler.cli.chain_command`)."""

from __future__ import annotations

import click

from sampler.cli import cli
from sampler.cli.options import (
    COUNT,
    JSON_OPTION,
    parse_logit,
    parse_temperatures,
    seed_option,
)
from sampler.errors import InvalidInputError
from sampler.json_values import to_json


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
@JSON_OPTION
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
    temps = parse_temperatures(temperatures) or list(CHEAT_SHEET_TEMPERATURES)
    if plot_path is not None:
        from sampler.plots.figures import check_figure_path

        check_figure_path(plot_path)  # fail before any output, not after
    sheet = cheat_sheet(values, temps, names)
    if plot_path is not None:
        from sampler.plots.cheatsheet_plot import plot_cheat_sheet

        plot_cheat_sheet(sheet, plot_path)
    if as_json:
        click.echo(to_json(sheet))
    else:
        click.echo(format_cheat_sheet(sheet))
        if plot_path is not None:
            click.echo(f"\nplot written to {plot_path}")


@cli.command()
@click.option(
    "--draws", type=COUNT, default=20_000, show_default=True, help="Tokens drawn per case."
)
@seed_option(help="Seed of the draws, or 'random'.")
@click.option(
    "--alpha",
    default=1e-4,
    show_default=True,
    help="Significance level per case (false alarms per case at a correct sampler).",
)
@click.option("--case", "cases", multiple=True, metavar="NAME", help="Run only this case.")
@JSON_OPTION
def verify(draws: int, seed: int, alpha: float, cases: tuple[str, ...], as_json: bool) -> int:
    """Chi-square test that the engine's draws follow distribution(), case by case.

    Exit code 1 if any case is rejected at --alpha.
    """
    import sys
    from dataclasses import asdict

    from sampler.engine.verify import check_request, format_results, run_cases

    if not 0 < alpha < 1:
        raise InvalidInputError(f"alpha={alpha} is out of range: use 0 < alpha < 1")
    total = draws * len(check_request(draws, cases or None))  # errors before the bar shows
    with click.progressbar(length=total, label="draws", file=sys.stderr) as bar:
        results = run_cases(draws=draws, seed=seed, names=cases or None, on_progress=bar.update)
    failed = [r.name for r in results if r.p_value < alpha]
    if as_json:
        click.echo(
            to_json(
                {
                    "alpha": alpha,
                    "seed": seed,
                    "failed": failed,
                    "cases": [asdict(r) for r in results],
                }
            )
        )
    else:
        click.echo(format_results(results, alpha))
    return 1 if failed else 0
