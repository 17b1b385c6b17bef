"""What ``sweep`` and ``compare`` print at the end: their options and the printing itself.

The results come from :mod:`sampler.report.results` (the table, the sample texts, the JSON
document); here they are only read from the run log and written to standard output.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sampler.experiments.config import RunConfig
    from sampler.generation.compare import SampleComparison
    from sampler.generation.generation_row import Completion
    from sampler.runlog.store import RunStore
    from sampler.sources.base import LogitSource

__all__ = ["all_columns_option", "print_comparison_json", "print_results"]

all_columns_option = click.option(
    "--all-columns",
    "--wide",
    "all_columns",
    is_flag=True,
    help="The full table: every column and its interval (as sampler report prints it).",
)


def print_results(
    store: RunStore, run_id: str, source: LogitSource, all_columns: bool, as_json: bool
) -> None:
    """A logged run's results on stdout: the table and sample texts, or one JSON document."""
    from sampler.json_values import to_json
    from sampler.report.results import results_text, run_results
    from sampler.report.sample_texts import pick_sample_texts
    from sampler.report.summary import summarize

    # one pass with steps for the summary; the texts need no steps
    summary = summarize(store.iter_completions(run_id, with_steps=True))
    rows = list(store.iter_completions(run_id, with_steps=False))
    if as_json:
        click.echo(to_json(run_results(store.get_run(run_id), summary, rows, source.decode)))
        return
    samples = pick_sample_texts(rows, decode=source.decode)
    width = shutil.get_terminal_size((100, 24)).columns
    click.echo(results_text(summary, rows[0]["prompt"], samples, width, all_columns))
    click.echo(f"\nrun id: {run_id}   (all columns: sampler report {run_id})")


def print_comparison_json(
    store: RunStore | None,
    run_id: str | None,
    source: LogitSource,
    config: RunConfig,
    greedy: Completion,
    comparisons: Sequence[SampleComparison],
) -> None:
    """A comparison as one JSON document: the logged run's fields when it was logged."""
    from sampler.json_values import to_json
    from sampler.report.results import compare_results

    run = {"kind": "compare", "model": source.name, "fingerprint": source.fingerprint}
    run = store.get_run(run_id) if store and run_id else run | {"config": config.to_dict()}
    click.echo(to_json(compare_results(run, greedy, comparisons, source.decode)))
