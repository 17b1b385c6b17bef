"""An experiment's outcome as ``report.md`` beside its PNGs, ``report.html`` and ``result.json``.

Everything is written inside the one folder the user named (figure names pass through
:func:`~sampler.files.safe_file_name`), each file atomically. The HTML page embeds its figures
and escapes every value, since tables and notes may quote model output; the Markdown page puts
such text in code spans. The styling and table helpers are the run reports'
(:mod:`sampler.report.pages`).
"""

from __future__ import annotations

import base64
import io
import json
import re
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sampler.files import atomic_writer, make_folder, safe_file_name
from sampler.json_values import to_json
from sampler.papers.records import Experiment, Outcome
from sampler.report.pages import _CSS, _code_span, _html_table
from sampler.report.summary import interval_warning

__all__ = ["FILES", "figure_file", "png_bytes", "result_record", "write_outcome"]

FILES = ("report.md", "report.html", "result.json")


def png_bytes(figure: Any) -> bytes:
    """A matplotlib figure as PNG bytes (closed afterwards, so figures do not pile up)."""
    from sampler.plots.figures import pyplot

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(figure)
    return buffer.getvalue()


def figure_file(name: str) -> str:
    """The file a figure is written to: its name made safe, always ``.png``."""
    return safe_file_name(Path(name).stem, fallback="figure") + ".png"


# cells of only these characters are shown as they are; any other (model text, markup) is
# shown in a code span, where Markdown renders nothing
_PLAIN_CELL = re.compile(r"[\w .,:;=()+\-–−±%/σ×τη≈'·]*")


def _cell(text: str) -> str:
    return text if _PLAIN_CELL.fullmatch(text) else _code_span(text).replace("|", "\\|")


def _warning(outcome: Outcome) -> str | None:
    fewest = min((f.estimate.clusters for f in outcome.findings), default=None)
    return None if fewest is None else interval_warning([{"prompts": fewest}])


def result_record(experiment: Experiment, outcome: Outcome, meta: dict[str, Any]) -> dict:
    """The outcome as plain values: what README's table and later comparisons read."""
    return {
        "experiment": experiment.name,
        "title": experiment.title,
        "claim": experiment.claim,
        "reference": experiment.reference.cite(),
        "verdict": outcome.verdict,
        "findings": [
            {
                "statement": f.statement,
                "value": f.estimate.value,
                "low": f.estimate.low,
                "high": f.estimate.high,
                "clusters": f.estimate.clusters,
                "unit": f.estimate.unit,
                "verdict": f.verdict,
                "paper": f.paper,
            }
            for f in outcome.findings
        ],
        "setup": outcome.setup,
        "runs": outcome.runs,
        "meta": meta,
    }


def _meta_rows(experiment: Experiment, outcome: Outcome, meta: dict[str, Any]) -> list[tuple]:
    reference = experiment.reference
    rows = [("reference", reference.cite()), ("verdict", outcome.verdict)]
    rows += [(key, value) for key, value in meta.items()]
    rows += [(key, value) for key, value in outcome.setup.items()]
    if outcome.runs:
        rows.append(("logged runs", ", ".join(outcome.runs)))
    return [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in rows]


def markdown_page(
    experiment: Experiment, outcome: Outcome, meta: dict[str, Any], names: list[str]
) -> str:
    """The Markdown page; figures are linked by their file names (``names``)."""
    lines = [f"# {experiment.title}", "", f"**Claim.** {experiment.claim}", ""]
    url = experiment.reference.url()
    cite = experiment.reference.cite()
    lines += [f"**Reference.** [{cite}]({url})" if url else f"**Reference.** {cite}", ""]
    lines += [f"**Verdict: {outcome.verdict}.**", "", "## Findings", ""]
    lines += ["| finding | our number (95 % CI) | clusters | verdict | paper |"]
    lines += ["|---|---|---:|---|---|"]
    for f in outcome.findings:
        cells = [f.statement, f.estimate.shown(), str(f.estimate.clusters), f.verdict, f.paper]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    warning = _warning(outcome)
    lines += ["", *([warning, ""] if warning else [])]
    for table in outcome.tables:
        lines += [f"## {table.title}", ""]
        lines += ["| " + " | ".join(map(_cell, table.header)) + " |"]
        lines.append("|" + "---|" * len(table.header))
        for row in table.rows:
            lines.append("| " + " | ".join(_cell(str(c)) for c in row) + " |")
        lines += ["", *([table.note, ""] if table.note else [])]
    if names:
        lines += ["## Figures", ""]
    for figure, name in zip(outcome.figures, names, strict=True):
        lines += [f"![{figure.caption}]({quote(name)})", "", f"*{figure.caption}*", ""]
    if outcome.notes:
        lines += ["## Notes", ""]
        lines += [line for note in outcome.notes for line in (note, "")]
    lines += ["## Setup", ""]
    lines += [f"- **{k}**: {_code_span(v)}" for k, v in _meta_rows(experiment, outcome, meta)]
    return "\n".join(lines).rstrip() + "\n"


def html_page(experiment: Experiment, outcome: Outcome, meta: dict[str, Any]) -> str:
    """One self-contained HTML page, figures embedded, every value escaped."""
    url = experiment.reference.url()
    cite = escape(experiment.reference.cite())
    reference = f'<a href="{escape(url)}">{cite}</a>' if url else cite
    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(experiment.title)} — sampler reproduction</title>",
        f"<style>{_CSS}</style>\n</head>\n<body>",
        f"<h1>{escape(experiment.title)}</h1>",
        f"<p><strong>Claim.</strong> {escape(experiment.claim)}</p>",
        f"<p><strong>Reference.</strong> {reference}</p>",
        f"<p><strong>Verdict: {escape(outcome.verdict)}.</strong></p>",
        "<h2>Findings</h2>",
        _html_table(
            ("finding", "our number (95 % CI)", "clusters", "verdict", "paper"),
            (
                (f.statement, f.estimate.shown(), f.estimate.clusters, f.verdict, f.paper)
                for f in outcome.findings
            ),
        ),
    ]
    warning = _warning(outcome)
    if warning:
        parts.append(f'<p class="warning"><strong>{escape(warning)}</strong></p>')
    for table in outcome.tables:
        parts += [f"<h2>{escape(table.title)}</h2>", '<div class="wide">']
        parts += [_html_table(table.header, table.rows, numeric=1), "</div>"]
        if table.note:
            parts.append(f'<p class="note">{escape(table.note)}</p>')
    if outcome.figures:
        parts.append("<h2>Figures</h2>")
    for figure in outcome.figures:
        data = base64.b64encode(figure.png).decode("ascii")
        caption = escape(figure.caption)
        parts.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    if outcome.notes:
        parts.append("<h2>Notes</h2>")
        parts += [f"<p>{escape(note)}</p>" for note in outcome.notes]
    parts += [
        "<h2>Setup</h2>",
        _html_table(None, _meta_rows(experiment, outcome, meta), css="meta"),
    ]
    parts.append("</body>\n</html>")
    return "\n".join(parts) + "\n"


def _write(path: Path, data: bytes) -> Path:
    with atomic_writer(path) as stream:
        stream.write(data)
    return path


def write_outcome(
    experiment: Experiment, outcome: Outcome, meta: dict[str, Any], folder: Path
) -> list[Path]:
    """Write the report files and figures into ``folder`` (made if missing); return them."""
    make_folder(folder, "report")
    names = [figure_file(f.file_name) for f in outcome.figures]
    written = [_write(folder / name, f.png) for f, name in zip(outcome.figures, names, strict=True)]
    markdown = markdown_page(experiment, outcome, meta, names)
    written.append(_write(folder / "report.md", markdown.encode("utf-8")))
    html = html_page(experiment, outcome, meta)
    written.append(_write(folder / "report.html", html.encode("utf-8")))
    record = to_json(result_record(experiment, outcome, meta))
    written.append(_write(folder / "result.json", (record + "\n").encode("utf-8")))
    return written
