"""The reproduction framework: registry, verdicts, intervals, the report writer, the command.

Oracles: closed-form arithmetic written here, the t quantile from the reports' own table
(``scipy`` is not needed: a paired mean of equal weights is checked against numpy's mean), and
the files on disk.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sampler.cli import cli
from sampler.papers import EXPERIMENTS, experiment, run_experiment
from sampler.papers.generations import PROMPTS
from sampler.papers.intervals import bootstrap_estimate, difference_estimate, ratio_estimate
from sampler.papers.records import (
    Estimate,
    Experiment,
    Figure,
    Finding,
    Options,
    Outcome,
    Reference,
    Table,
    overall_verdict,
    verdict_above,
    verdict_within,
)
from sampler.papers.writer import write_outcome

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = "synthetic:markov?vocab=300"


def test_every_registered_experiment_loads_with_its_name():
    for name in EXPERIMENTS:
        chosen = experiment(name)
        assert chosen.name == name and chosen.claim.endswith(".")
        assert chosen.reference.arxiv or chosen.reference.venue


def test_the_prompts_are_holtzman_configs_prompts():
    config = tomllib.loads((ROOT / "configs" / "holtzman.toml").read_text(encoding="utf-8"))
    assert list(PROMPTS) == config["prompts"]


def test_verdicts_follow_the_interval():
    assert verdict_above(Estimate(1, 0.1, 2, 8)) == "reproduced"
    assert verdict_above(Estimate(1, -0.1, 2, 8)) == "not significant"
    assert verdict_above(Estimate(-1, -2, -0.1, 8)) == "not reproduced"
    assert verdict_within(Estimate(0, -0.1, 0.1, 8), -0.5, 0.5) == "reproduced"
    assert verdict_within(Estimate(0, -0.1, 0.9, 8), -0.5, 0.5) == "not significant"
    assert verdict_within(Estimate(1, 0.6, 0.9, 8), -0.5, 0.5) == "not reproduced"
    assert overall_verdict(["reproduced", "reproduced"]) == "reproduced"
    assert overall_verdict(["reproduced", "not reproduced", "not significant"]) == "not reproduced"


def test_a_ratio_over_clusters_is_the_pooled_ratio_and_its_interval_covers_it():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(1, 5, 12), rng.integers(1, 10, 12).astype(float)
    estimate = ratio_estimate(a, b, rng)
    assert estimate.value == pytest.approx(a.sum() / b.sum(), rel=1e-12)  # 12-term sums: ≲ 12 u
    assert estimate.low < estimate.value < estimate.high and not estimate.few_clusters


def test_a_paired_difference_of_equal_weights_is_the_mean_difference():
    rng = np.random.default_rng(2)
    before, after = rng.normal(0, 1, 10), rng.normal(0.5, 1, 10)
    ones = np.ones(10)
    estimate = difference_estimate((before, ones), (after, ones), rng)
    assert estimate.value == pytest.approx(np.mean(after - before), rel=1e-12)  # ≲ 10 u
    assert estimate.low < estimate.value < estimate.high


def test_a_constant_statistic_has_a_zero_width_interval_and_few_clusters_are_flagged():
    estimate = bootstrap_estimate(lambda w: np.full(len(w), 3.0), 5, np.random.default_rng(0))
    assert (estimate.value, estimate.low, estimate.high) == (3.0, 3.0, 3.0)
    assert estimate.few_clusters


def _toy_outcome(text: str, clusters: int = 12) -> tuple[Experiment, Outcome]:
    chosen = Experiment(
        "toy",
        "A toy",
        "A toy claim.",
        Reference("Someone", 2020, "Toy", "0000.00000"),
        run=lambda options, source: None,  # type: ignore[arg-type, return-value]
    )
    finding = Finding("toy value", Estimate(1.0, 0.5, 1.5, clusters), "reproduced")
    table = Table("Texts", ("what", "text"), (("sample", text),))
    figure = Figure("../../escape", "a caption", b"\x89PNG fake")
    return chosen, Outcome([finding], [table], [figure], notes=[text])


def test_the_report_escapes_model_text_and_stays_in_its_folder(tmp_path):
    text = "<script>alert(1)</script> | ``` *x*"
    chosen, outcome = _toy_outcome(text)
    folder = tmp_path / "out"
    written = write_outcome(chosen, outcome, {"model": "toy"}, folder)
    assert all(path.parent == folder for path in written)
    assert sorted(p.name for p in folder.iterdir()) == [
        "escape.png",
        "report.html",
        "report.md",
        "result.json",
    ]
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert "<script>" not in html and "&lt;script&gt;" in html
    markdown = (folder / "report.md").read_text(encoding="utf-8")
    table_line = next(line for line in markdown.splitlines() if line.startswith("| sample"))
    # in a code span (rendered as text), its pipe escaped so that the row keeps its cells
    assert table_line.startswith("| sample | ````<script>") and "\\| ``` *x*````" in table_line
    record = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    assert record["verdict"] == "reproduced" and record["findings"][0]["low"] == 0.5


def test_fewer_than_8_clusters_print_the_reports_warning(tmp_path):
    chosen, outcome = _toy_outcome("x", clusters=5)
    write_outcome(chosen, outcome, {}, tmp_path)
    for name in ("report.md", "report.html"):
        assert "WARNING: these intervals rest on only 5 prompts" in (tmp_path / name).read_text()


def test_list_names_every_experiment():
    result = CliRunner().invoke(cli, ["reproduce", "--list"])
    assert result.exit_code == 0
    for name in EXPERIMENTS:
        assert f"{name}: " in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["reproduce", "no-such-paper"], "error: experiment 'no-such-paper' is unknown"),
        (["reproduce"], "error: name an experiment"),
        (["reproduce", "top-n-sigma", "--scale", "0"], "error: Invalid value for '--scale'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(arguments, message):
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 2 and result.output.startswith(message)
    assert "Traceback" not in result.output


def test_a_report_folder_that_is_a_file_is_refused_and_left_alone(tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me")
    result = CliRunner().invoke(
        cli,
        [
            "reproduce",
            "top-n-sigma",
            "--model",
            SYNTHETIC,
            "--out",
            str(target),
            "--db",
            str(tmp_path / "db.sqlite"),
        ],
    )
    assert result.exit_code == 2 and "is a file" in result.output
    assert target.read_text() == "keep me"


def test_run_experiment_writes_into_the_named_folder_and_logs_its_runs(tmp_path):
    from sampler.runlog.store import open_run_log
    from sampler.sources import load_source

    options = Options(
        source=load_source(SYNTHETIC), out=tmp_path / "r", db=str(tmp_path / "db.sqlite")
    )
    ran = run_experiment("top-n-sigma", options)
    assert {p.parent for p in ran.written} == {tmp_path / "r"}
    logged = {run["id"] for run in open_run_log(options.db, create=False).list_runs()}
    assert set(ran.outcome.runs) <= logged and ran.outcome.runs


def test_more_human_text_than_pydoc_holds_is_one_line_naming_what_exists():
    from sampler.errors import InvalidInputError
    from sampler.papers.texts import human_documents
    from sampler.sources import load_source

    with pytest.raises(InvalidInputError, match=r"^only \d+ pydoc topics have 100001 tokens"):
        human_documents(load_source(SYNTHETIC), 4, 100_000)
