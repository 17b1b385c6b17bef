"""Commands on logits alone (numpy only): softmax cheat sheet, chain trace, verification."""

from __future__ import annotations

from typing import Any

import click

from sampler.cli import cli
from sampler.cli.options import (
    COUNT,
    JSON_OPTION,
    parse_logit,
    parse_temperature,
    parse_temperatures,
    sampling_options,
    seed_option,
    temperature_option,
)
from sampler.engine.params import DEFAULT_ORDER
from sampler.engine.presets import PRESETS
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


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("logits", nargs=-1)
@click.option("--labels", metavar="A,B,C", help="Comma-separated token names, one per logit.")
@click.option(
    "--history",
    metavar="A,B,A",
    help="Tokens seen before (labels), for the penalties and DRY. DRY's vocabulary is the "
    "labels: a label that contains a sequence breaker is one.",
)
@temperature_option()
@sampling_options
@click.option(
    "--order",
    default=DEFAULT_ORDER,
    show_default=True,
    metavar="PRESET|a,b,c|all",
    help=f"{', '.join(PRESETS)}, a comma-separated stage list, or all: every preset.",
)
@JSON_OPTION
def chain(
    logits: tuple[str, ...],
    labels: str | None,
    history: str | None,
    temperature_text: str,
    order: str,
    as_json: bool,
    **filters: float | int | str,
) -> None:
    """Show what each stage of a sampling chain does to one row of LOGITS.

    With no LOGITS it uses the cheat sheet's 3.0 1.0 0.2. Example, the peers' orders on
    the same settings: sampler chain 3 2.5 1 0.2 -t 2 --min-p 0.2 --top-k 3 --order all
    """
    from dataclasses import asdict

    from sampler.cheatsheet import CHEAT_SHEET_LABELS, CHEAT_SHEET_LOGITS, default_labels
    from sampler.engine.params import SamplingParams
    from sampler.engine.trace import format_trace, trace_chain

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
    seen = _history(history, names)
    traces, chains = {}, {}
    for name in orders:
        stages: str | list[str] = name if name in PRESETS else name.split(",")
        params = SamplingParams(
            temperature=parse_temperature(temperature_text), order=stages, **filters
        )
        traces[name] = trace_chain(values, params, seen, vocabulary=_label_vocabulary(names))
        chains[name] = params.stages
    if as_json:
        click.echo(
            to_json(
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
        # the chain the row runs: mirostat replaces the order's truncation stages
        stages_text = " → ".join(chains[name])
        click.echo(
            ("\n" if index else "") + format_trace(steps, names, f"order {name}: {stages_text}")
        )
    if {"penalties", "dry"} & set(params.active_stages) and not seen:
        click.echo(
            "\n(the penalties and DRY act on tokens seen before: give them with --history, "
            "e.g. --history " + ",".join(names[:2] * 2) + ")"
        )
    if filters.get("xtc_probability"):
        click.echo(
            f"\n(XTC is shown with its coin fired; it fires on a step with probability "
            f"{filters['xtc_probability']:g})"
        )


def _history(text: str | None, names: list[str]) -> list[int]:
    """``--history A,B,A``: the token ids of labels ``names``, in order."""
    if not text:
        return []
    ids = {name: index for index, name in enumerate(names)}
    unknown = [item for item in text.split(",") if item not in ids]
    if unknown:
        raise InvalidInputError(
            f"--history token {unknown[0]!r} is not a label: use the labels "
            f"{', '.join(names)} (comma-separated, e.g. --history {names[0]},{names[-1]})"
        )
    return [ids[item] for item in text.split(",")]


def _label_vocabulary(names: list[str]) -> Any:
    """The labels as DRY's vocabulary: token ``i``'s text is its label, and a text tokenizes
    to the label it equals (else to nothing)."""
    from sampler.engine.filters.dry import TokenTexts

    ids = {name.encode("utf-8"): index for index, name in enumerate(names)}
    return TokenTexts(list(ids), lambda data: [ids[data]] if data in ids else [])
