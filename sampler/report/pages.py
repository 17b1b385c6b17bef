"""A logged run as a page: Markdown beside its PNGs, or one self-contained HTML file.

The HTML page embeds its images as base64 data URIs and loads nothing from anywhere, so it can
be mailed or opened from disk. Everything that came from a user or a model (prompts, text,
labels, config values) is escaped, since model text can contain markup.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sampler.engine.constraints import shown_value
from sampler.engine.stages import switched_on
from sampler.errors import InvalidInputError
from sampler.files import atomic_writer, make_folder
from sampler.report.run_plots import PLOT_FILES, render_run_plots, save_run_plots
from sampler.report.summary import (
    format_summary,
    interval_caption,
    interval_rows,
    interval_warning,
    markdown_summary,
    ordering_notes,
    summarize,
    table_rows,
)

__all__ = ["REPORT_FORMATS", "html_report", "markdown_report", "write_report"]

#: Report format → the main file :func:`write_report` writes.
REPORT_FORMATS = {"table": "report.txt", "md": "report.md", "html": "report.html"}
_CSS = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1200px; margin: 2em auto;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; }
pre { background: #f6f6f6; padding: .7em 1em; white-space: pre-wrap; word-break: break-word;
      border-left: 3px solid #bbb; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
.wide th, .wide td { white-space: nowrap; padding: .2em .45em; font-size: 14px; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.wide { overflow-x: auto; } .meta td:first-child { color: #666; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #666; font-size: .9em; } .note { color: #666; font-size: .9em; }
.warning { color: #8a1c00; background: #fff3ee; border-left: 3px solid #c33; padding: .4em .8em; }
"""


def _filters(config: dict[str, Any]) -> str:
    """The stage settings a run switched on (those at their "off" value change nothing)."""
    chosen = [f"{name}={shown_value(name, value)}" for name, value in switched_on(config).items()]
    return ", ".join(chosen) or "none"


def _overview(run: dict[str, Any], completions: Sequence[dict[str, Any]]) -> list[tuple]:
    """(label, value) pairs for the page header, values still raw text; unknowns left out."""
    config = run.get("config") or {}
    temperatures = config.get("temperatures") or sorted({c["temperature"] for c in completions})
    pairs = [
        ("model", run.get("model", "?")),
        ("fingerprint", run.get("fingerprint", "?")),
        ("created", run.get("created_at", "?")),
        ("kind", run.get("kind", "?")),
        (
            "status",
            f"{run.get('status', '?')}, {len(completions)} of {run.get('total_rows', '?')} rows",
        ),
        ("seed", config.get("seed", "?")),
        ("temperatures", ", ".join(f"{t:g}" for t in temperatures)),
        ("samples per prompt", config.get("samples", "?")),
        ("max new tokens", config.get("max_new_tokens", "?")),
        ("order", config.get("order", "?")),
        ("filters", _filters(config)),
    ]
    return [(label, value) for label, value in pairs if value != "?"]


def _first_prompt(run: dict[str, Any], completions: Sequence[dict[str, Any]]) -> str | None:
    prompts = [c["prompt"] for c in completions]
    for prompt in (run.get("config") or {}).get("prompts") or []:
        if prompt in prompts:
            return prompt
    return prompts[0] if prompts else None


def _samples(run: dict[str, Any], completions: Sequence[dict[str, Any]]) -> list[dict]:
    """Sample 0 of the first prompt at each temperature, coldest first."""
    prompt = _first_prompt(run, completions)
    rows = [c for c in completions if c["prompt"] == prompt and c.get("sample") == 0]
    return sorted(rows, key=lambda c: c["temperature"])


def _tau(temperature: float) -> str:
    return "0 (greedy)" if temperature == 0 else f"{temperature:g}"


def _fence(text: str) -> str:
    """A backtick fence longer than any backtick run in ``text``, so the text cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _code_span(value: Any) -> str:
    text = " ".join(str(value).split())
    ticks = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _fenced(text: str, info: str = "") -> list[str]:
    fence = _fence(text)
    return [f"{fence}{info}", text, fence]


def markdown_report(
    run: dict[str, Any],
    summary: Sequence[dict[str, Any]],
    completions: Sequence[dict[str, Any]],
    image_names: Iterable[str],
) -> str:
    """The run as Markdown; images are linked by their file name relative to the page."""
    config = run.get("config") or {}
    lines = [f"# Run {_code_span(run.get('id', '?'))}", ""]
    lines += [f"- **{label}**: {_code_span(value)}" for label, value in _overview(run, completions)]
    lines += ["", "## Prompts", ""]
    for prompt in config.get("prompts") or sorted({c["prompt"] for c in completions}):
        lines += [*_fenced(prompt, "text"), ""]
    lines += ["## Summary by temperature", "", markdown_summary(summary), "", "## Plots", ""]
    for name in image_names:
        caption = PLOT_FILES.get(name, Path(name).stem.replace("_", " "))
        lines += [f"![{caption}]({quote(name)})", ""]
    samples = _samples(run, completions)
    if samples:
        lines += ["## Sample texts", "", "First prompt, sample 0, at each temperature.", ""]
    for row in samples:
        lines += [
            f"### τ = {_tau(row['temperature'])}",
            "",
            f"{len(row['token_ids'])} tokens, finish reason "
            f"{_code_span(row.get('finish_reason', '?'))}",
            "",
        ]
        lines += [*_fenced(row["text"], "text"), ""]
    lines += ["## Config", "", *_fenced(json.dumps(config, indent=2, ensure_ascii=False), "json")]
    lines += ["", "## Versions", ""]
    lines += [f"- {name}: {_code_span(v)}" for name, v in (run.get("versions") or {}).items()]
    return "\n".join(lines).rstrip() + "\n"


def _html_table(
    header: Sequence[str] | None, rows: Iterable[Sequence[Any]], numeric: int = 0, css: str = ""
) -> str:
    """An escaped HTML table; columns from ``numeric`` on are right-aligned (0: none)."""
    head = (
        ""
        if header is None
        else "<thead><tr>" + "".join(f"<th>{escape(str(h))}</th>" for h in header) + "</tr></thead>"
    )
    body = []
    for row in rows:
        cells = "".join(
            f"<td{' class=num' if numeric and i >= numeric else ''}>{escape(str(v))}</td>"
            for i, v in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    attr = f' class="{css}"' if css else ""
    return f"<table{attr}>{head}<tbody>{''.join(body)}</tbody></table>"


def _config_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def html_report(
    run: dict[str, Any],
    summary: Sequence[dict[str, Any]],
    completions: Sequence[dict[str, Any]],
    images: dict[str, bytes],
) -> str:
    """The run as one self-contained HTML page; ``images`` maps PNG file names to bytes."""
    config = run.get("config") or {}
    title = f"Run {run.get('id', '?')}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)} — sampler report</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(title)}</h1>",
        _html_table(None, _overview(run, completions), css="meta"),
        "<h2>Summary by temperature</h2>",
        '<div class="wide">',
        _html_table(*table_rows(summary), numeric=1),
        "</div>",
        f'<p class="note">{escape(interval_caption(summary))}.</p>',
        '<div class="wide">',
        _html_table(*interval_rows(summary), numeric=1),
        "</div>",
    ]
    warning = interval_warning(summary)
    if warning:
        parts.append(f'<p class="warning"><strong>{escape(warning)}</strong></p>')
    for heading, items in ordering_notes(summary):
        parts.append(f"<p>{escape(heading)}</p>")
        if items:
            parts.append("<ul>" + "".join(f"<li>{escape(item)}</li>" for item in items) + "</ul>")
    parts.append("<h2>Plots</h2>")
    for name, data in images.items():
        caption = escape(PLOT_FILES.get(name, Path(name).stem.replace("_", " ")))
        encoded = base64.b64encode(data).decode("ascii")
        parts.append(
            f'<figure><img src="data:image/png;base64,{encoded}" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    samples = _samples(run, completions)
    if samples:
        parts += [
            "<h2>Sample texts</h2>",
            f"<p>Prompt <code>{escape(samples[0]['prompt'])}</code>, sample 0, at each "
            "temperature.</p>",
        ]
    for row in samples:
        parts += [
            f"<h3>τ = {escape(_tau(row['temperature']))}</h3>",
            f'<p class="note">{len(row["token_ids"])} tokens, finish reason '
            f"<code>{escape(str(row.get('finish_reason', '?')))}</code></p>",
            f"<pre>{escape(row['text'])}</pre>",
        ]
    parts += [
        "<h2>Config</h2>",
        _html_table(("key", "value"), ((k, _config_value(v)) for k, v in config.items())),
        "<h2>Versions</h2>",
        _html_table(("package", "version"), (run.get("versions") or {}).items()),
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def _write_text(path: Path, text: str) -> Path:
    with atomic_writer(path) as stream:
        stream.write(text.encode("utf-8"))
    return path


def write_report(
    run: dict[str, Any],
    completions: Sequence[dict[str, Any]],
    fmt: str,
    out_dir: str | os.PathLike[str],
) -> Path:
    """Write a run's report into ``out_dir`` (made if missing) and return the main file.

    ``fmt`` is ``table`` (report.txt, the aligned terminal table), ``md`` (report.md beside
    its four PNGs) or ``html`` (report.html alone, images embedded).
    """
    if fmt not in REPORT_FORMATS:
        raise InvalidInputError(
            f"report format {fmt!r} is unknown: use {', '.join(REPORT_FORMATS)}"
        )
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"report folder {str(folder)!r} is a file: name a folder")
    if not completions:
        raise InvalidInputError(
            f"run {run.get('id', '?')} has no completions yet: nothing to report"
        )
    make_folder(folder, "report")
    summary = summarize(completions)
    target = folder / REPORT_FORMATS[fmt]
    if fmt == "table":
        return _write_text(target, f"run {run.get('id', '?')}\n{format_summary(summary)}\n")
    if fmt == "md":
        written = save_run_plots(summary, completions, folder)
        return _write_text(target, markdown_report(run, summary, completions, written))
    images = render_run_plots(summary, completions)
    return _write_text(target, html_report(run, summary, completions, images))
