"""Commands on the run log itself: list runs, export one, report on one."""

from __future__ import annotations

import sys

import click

from sampler.cli import cli
from sampler.cli.options import INT64_MAX, db_option, open_store
from sampler.errors import InvalidInputError
from sampler.report.pages import REPORT_FORMATS
from sampler.runlog.schema import EXPORT_FORMATS


@cli.command()
@db_option
@click.option(
    "--limit", type=click.IntRange(1, INT64_MAX), default=20, show_default=True, help="Runs shown."
)
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
    "--format",
    "fmt",
    type=click.Choice([*EXPORT_FORMATS, "parquet"]),
    default=EXPORT_FORMATS[0],
    show_default=True,
)
@click.option(
    "--out",
    "out_dir",
    metavar="DIR",
    help="Folder for parquet (made if missing): RUN-completions.parquet and "
    "RUN-steps.parquet, RUN's letters, digits, - and _. Nothing is written outside it.",
)
@db_option
def export(run_id: str, fmt: str, out_dir: str | None, db: str | None) -> None:
    """Write a run to stdout: JSONL (one completion a line) or CSV (one step a line); or as
    two Parquet files (completions, steps) into a folder (needs the data extra)."""
    if fmt == "parquet":
        if out_dir is None:
            raise InvalidInputError("--format parquet writes two files: give --out DIR")
        from sampler.runlog.frames import require_data_packages
        from sampler.runlog.parquet import export_parquet

        require_data_packages()  # before the run log is opened: the hint comes first
        for path, count in export_parquet(open_store(db), run_id, out_dir).values():
            click.echo(f"{path} ({count} rows)")
        return
    if out_dir is not None:
        raise InvalidInputError(
            f"--out is for --format parquet; --format {fmt} writes to stdout (redirect it)"
        )
    from sampler.runlog.export import export_run

    count = export_run(open_store(db), run_id, fmt, sys.stdout)
    click.echo(f"{count} records", err=True)


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(REPORT_FORMATS)),
    default="table",
    show_default=True,
)
@click.option(
    "--out",
    "out_dir",
    metavar="DIR",
    help="Folder for md/html (default: reports/RUN, RUN's letters, digits, - and _). Nothing "
    "is written outside it.",
)
@db_option
def report(run_id: str, fmt: str, out_dir: str | None, db: str | None) -> None:
    """Per-temperature summary of a run: a table, or Markdown / one self-contained HTML page."""
    from sampler.report.summary import format_summary, summarize

    store = open_store(db)
    run = store.get_run(run_id)
    if not run["rows_done"]:
        raise InvalidInputError(f"run {run['id']} has no finished rows yet")
    if fmt == "table":
        click.echo(
            f"run {run['id']} · {run['kind']} · {run['model']} · "
            f"{run['rows_done']}/{run['total_rows']} rows"
        )
        # one pass over the rows as they are read: a large run is never held in memory
        click.echo(format_summary(summarize(store.iter_completions(run["id"], with_steps=True))))
        return
    completions = store.completions(run["id"])
    from pathlib import Path

    from sampler.files import safe_file_name
    from sampler.report.pages import write_report

    # the run id comes from the run log, which anyone may have written: a safe form of it
    folder = Path(out_dir) if out_dir else Path("reports") / safe_file_name(run["id"])
    target = write_report(run, completions, fmt, folder)
    click.echo(f"report written to {target}")
