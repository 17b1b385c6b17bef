"""Every config shipped in configs/ is valid, runs the stages it says, and its comment says how
to run it; the family examples run end to end on a synthetic source and report their
telemetry plots."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from sampler.cli import cli
from sampler.experiments.config import RunConfig, load_config
from sampler.runlog.store import RunStore

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_is_valid(path):
    config = RunConfig.from_dict(load_config(path), origin=str(path))
    assert config.rows()
    assert f"configs/{path.name}" in path.read_text()  # its comment says how to run it


@pytest.mark.parametrize(
    ("name", "stage", "plot"),
    [("mirostat", "mirostat", "mirostat_mu.png"),
     ("dynatemp", "temperature", "dynamic_temperature.png"),
     ("creative", "xtc", "xtc.png"), ("creative", "dry", "dry.png"),
     ("adaptive_p", "adaptive_p", "adaptive_p.png")],
)
def test_family_configs_run_and_report_their_telemetry(name, stage, plot, tmp_path):
    path = Path(__file__).parent.parent / "configs" / f"{name}.toml"
    assert stage in RunConfig.from_dict(load_config(path)).rows()[-1].params.stages
    db = str(tmp_path / "runs.db")
    args = ["sweep", "--config", str(path), "--model", "synthetic:markov?vocab=300&seed=1",
            "--max-new-tokens", "8", "--samples", "1", "--db", db]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    with RunStore(db) as store:
        run_id = store.get_run("latest")["id"]
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["report", run_id, "--format", "md", "--out", str(out),
                                      "--db", db])
    assert result.exit_code == 0, result.output
    pngs = {p.name for p in out.glob("*.png")}
    assert {"entropy_vs_temperature.png", "first_step.png"} <= pngs
    if plot is not None:
        assert plot in pngs and plot in (out / "report.md").read_text()
    others = {"mirostat_mu.png", "dynamic_temperature.png", "adaptive_p.png"} - {plot}
    assert not pngs & others
