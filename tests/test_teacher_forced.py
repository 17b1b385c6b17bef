"""Teacher-forced analysis after a prompt scores the position a sweep's first step samples from."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special
import scipy.stats
from test_step_stats import float32_nats

from sampler import SamplingParams
from sampler.analysis.teacher_forced import analyze_text
from sampler.generation.generation_row import GenerationRow
from sampler.generation.loop import generate
from sampler.sources.synthetic_spec import parse_synthetic

MARKOV = "synthetic:markov?vocab=300&sharpness=2.0&seed=1"
TEMPERATURES = [0.5, 1.0, 1.7]


def test_first_position_is_the_sweeps_first_step():
    source = parse_synthetic(MARKOV)
    result = analyze_text(source, "puzo hena kobe", TEMPERATURES, prompt="kalo mesu")
    assert result.labels == ["puzo", "hena", "kobe"]  # every text token is scored
    logits, _ = source.start([source.encode("kalo mesu", chat=False)])
    for column, tau in enumerate(TEMPERATURES):
        # the oracle: scipy on the logits after the prompt
        probs = scipy.special.softmax(logits[0].astype(np.float64) / tau)
        bound = float32_nats(probs)  # float32 logits: the engine's rounding (test_step_stats)
        assert result.entropy[0, column] == pytest.approx(scipy.stats.entropy(probs), abs=bound)
        # and the first step of sampled rows at that τ (it does not depend on the draw)
        rows = [GenerationRow("kalo mesu", SamplingParams(temperature=tau, seed=s)) for s in (1, 2)]
        for completion in generate(source, rows, max_new_tokens=1):
            first = completion.steps[0]["entropy_final"]
            assert first == pytest.approx(result.entropy[0, column], abs=2 * bound)  # two paths


def test_without_a_prompt_the_first_token_is_context_only():
    source = parse_synthetic(MARKOV)
    ids = source.encode("kalo mesu puzo", chat=False)
    result = analyze_text(source, "kalo mesu puzo", [1.0])
    assert result.labels == [source.token_label(i) for i in ids[1:]] and len(ids) == 3


def test_cli_analyze_prompt_matches_a_logged_first_step(tmp_path):
    import json

    from click.testing import CliRunner

    from sampler.cli import cli
    from sampler.runlog.store import RunStore

    db = str(tmp_path / "log.db")
    runner = CliRunner()
    swept = runner.invoke(cli, ["sweep", "--model", MARKOV, "--prompt", "kalo mesu",
                                "--temperatures", "0.5,1.7", "--samples", "2",
                                "--max-new-tokens", "3", "--db", db])
    assert swept.exit_code == 0, swept.output
    result = runner.invoke(cli, ["analyze", "--model", MARKOV, "--prompt", "kalo mesu",
                                 "--text", "puzo hena", "--temperatures", "0.5,1.7", "--json"])
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout)["entropy"][0]
    source = parse_synthetic(MARKOV)
    logits, _ = source.start([source.encode("kalo mesu", chat=False)])
    with RunStore(db) as store:
        for completion in store.completions("latest"):
            column = [0.5, 1.7].index(completion["temperature"])
            # two float32 computations from the same logits: each within float32_nats
            law = scipy.special.softmax(logits[0].astype(np.float64) / completion["temperature"])
            assert completion["steps"][0]["entropy_final"] == pytest.approx(
                first[column], abs=2 * float32_nats(law))


def test_cli_analyze_prompt_needs_text():
    from click.testing import CliRunner

    from sampler.cli import cli

    result = CliRunner().invoke(cli, ["analyze", "--run", "latest", "--prompt", "hi"])
    assert result.exit_code == 2
    expected = "error: --prompt goes with --text (a logged run has its own prompt)"
    assert result.stderr.strip() == expected
