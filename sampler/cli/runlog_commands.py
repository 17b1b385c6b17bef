"""Commands on the run log itself: list runs, export one, report on one."""

from __future__ import annotations

import sys

import click
from click.core import ParameterSource

from sampler.cli import cli
from sampler.cli.options import INT64_MAX, JSON_OPTION, db_option, open_store
from sampler.errors import InvalidInputError
from sampler.json_values import to_json
from sampler.report.pages import REPORT_FORMATS
from sampler.runlog.schema import EXPORT_FORMATS


@cli.command()
@db_option
@click.option(
    "--limit", type=click.IntRange(1, INT64_MAX), default=20, show_default=True, help="Runs shown."
)
@JSON_OPTION
def runs(db: str | None, limit: int, as_json: bool) -> None:
    """List logged runs, newest first."""
    from sampler.tables import aligned_table

    listed = open_store(db, create=False).list_runs(limit=limit)
    if as_json:
        click.echo(to_json(listed))
        return
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

    count = export_run(open_store(db, create=False), run_id, fmt, sys.stdout)
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
@JSON_OPTION
@click.pass_context
def report(
    ctx: click.Context, run_id: str, fmt: str, out_dir: str | None, db: str | None, as_json: bool
) -> None:
    """Per-temperature summary of a run: a table, or Markdown / one self-contained HTML page."""
    from sampler.report.summary import format_summary, summarize

    if as_json and (ctx.get_parameter_source("fmt") == ParameterSource.COMMANDLINE or out_dir):
        raise InvalidInputError(
            "--json prints the summary table's data: give it without --format and --out"
        )
    store = open_store(db, create=False)
    run = store.get_run(run_id)
    if not run["rows_done"]:
        raise InvalidInputError(f"run {run['id']} has no finished rows yet")
    if as_json:
        summary = summarize(store.iter_completions(run["id"], with_steps=True))
        fields = ("id", "created_at", "kind", "model", "status", "rows_done", "total_rows")
        click.echo(to_json({"run": {key: run[key] for key in fields}, "temperatures": summary}))
        return
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
