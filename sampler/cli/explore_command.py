"""``sampler explore``: the web page as one offline HTML file (see sampler.serve.explore)."""

from __future__ import annotations

import click

from sampler.cli import cli, options
from sampler.errors import InvalidInputError


@cli.command()
@options.model_option()
@options.dtype_option()
@click.option("--prompt", required=True, help="The text the model continues.")
@click.option(
    "--steps",
    type=click.IntRange(1, 256),
    default=16,
    show_default=True,
    help="Tokens generated; each step's logits row is embedded.",
)
@click.option("--out", "out", required=True, metavar="FILE.html", help="The file to write.")
@options.temperature_option("Temperature of the text (0 = greedy); the sliders start here.")
@options.sampling_options
@options.order_option()
@options.seed_option()
@options.raw_option
@options.cache_option
def explore(
    model: str,
    dtype: str,
    prompt: str,
    steps: int,
    out: str,
    temperature_text: str,
    order: str,
    seed: int,
    raw: bool,
    cache_dir: str | None,
    **settings: object,
) -> None:
    """Write the page of `sampler serve` as one self-contained offline file."""
    from sampler.engine.params import SamplingParams
    from sampler.files import atomic_writer
    from sampler.serve.explore import explore_page

    if not out.lower().endswith((".html", ".htm")):
        raise InvalidInputError(f"--out {out!r} must name an .html file")
    params = SamplingParams(
        temperature=options.parse_temperature(temperature_text), order=order, seed=seed, **settings
    )
    source = options.load_model(model, cache_dir, dtype)
    html = explore_page(source, prompt, steps, params, raw=raw)
    with atomic_writer(out) as stream:
        stream.write(html.encode("utf-8"))
    click.echo(f"wrote {out}: {steps} steps of {source.name}, {len(html) / 1e6:.1f} MB")
