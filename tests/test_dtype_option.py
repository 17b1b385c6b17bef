"""`--dtype`: the torch backend's weight type, recorded with a run and used again on resume."""

import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner

from sampler.cli import cli, experiment_commands
from sampler.runlog.store import RunStore
from sampler.sources import DEFAULT_MODEL, load_source
from sampler.sources.model_cache import ALIASES, cache_root, model_folder
from tests.test_bad_input import one_error_line

MARKOV = "synthetic:markov?vocab=300&sharpness=2.0&seed=1"


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_the_default_model_runs_on_llama_cpp():
    assert ALIASES[DEFAULT_MODEL].backend == "llama.cpp"


@pytest.mark.parametrize("command", ["generate", "compare", "sweep"])
def test_a_dtype_on_a_source_that_takes_only_float32_is_one_error_line(command, tmp_path):
    db = tmp_path / "runs.db"
    args = [command, "--model", MARKOV, "--dtype", "bfloat16", "--db", str(db)]
    args += ["--prompt", "hi", "--max-new-tokens", "2"]
    line = one_error_line(run_cli(*args), "'bfloat16'", "float32")
    assert "synthetic" in line
    if db.exists():  # nothing logged: the source is refused before a run starts
        with RunStore(str(db)) as store:
            assert store.list_runs() == []


def test_an_unknown_dtype_is_refused_by_the_option_and_by_a_config(tmp_path):
    result = run_cli("generate", "--model", MARKOV, "--dtype", "float16", "--prompt", "hi")
    assert result.exit_code == 2 and "float16" in result.output + result.stderr
    config = tmp_path / "bad.toml"
    config.write_text(f'model = "{MARKOV}"\ndtype = "half"\nprompts = ["hi"]\n')
    one_error_line(
        run_cli("sweep", "--config", str(config), "--db", str(tmp_path / "r.db")),
        "dtype='half'",
        "float32, bfloat16, auto",
    )


def test_a_sweep_records_its_dtype_and_resume_loads_the_model_with_it(tmp_path, monkeypatch):
    # The model loader is replaced by one that records what it was asked for and serves a
    # synthetic source, so the plumbing is tested without loading torch.
    asked = []

    def fake_load(spec, cache_dir, dtype="float32"):
        asked.append((spec, dtype))
        return load_source(MARKOV)

    monkeypatch.setattr(experiment_commands, "load_model", fake_load)
    db = str(tmp_path / "runs.db")
    args = ["sweep", "--model", "smollm2-135m", "--dtype", "bfloat16", "--prompt", "hi"]
    result = run_cli(*args, "--temperatures", "0.7", "--samples", "2", "--max-new-tokens", "3",
                     "--db", db)
    assert result.exit_code == 0, result.output
    with RunStore(db) as store:
        run = store.get_run("latest")
    assert run["config"]["dtype"] == "bfloat16"
    with sqlite3.connect(db) as conn:  # lose one row, as an interrupted sweep would
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM completions WHERE row_index = 1")
    conn.close()
    result = run_cli("sweep", "--resume", run["id"], "--db", db)
    assert result.exit_code == 0, result.output
    assert asked == [("smollm2-135m", "bfloat16"), ("smollm2-135m", "bfloat16")]


@pytest.fixture(scope="module")
def torch_bf16():
    if not (model_folder("smollm2-135m", cache_root()) / "manifest.json").is_file():
        pytest.skip("SmolLM2 is not in the cache (README's first command fetches it)")
    pytest.importorskip("torch")
    return load_source("smollm2-135m", quiet=True, dtype="bfloat16")


def test_bfloat16_logits_stay_close_to_float32_and_greedy_agrees_at_first(torch_bf16):
    import torch

    float32 = load_source("smollm2-135m", quiet=True)
    assert next(torch_bf16.model.parameters()).dtype == torch.bfloat16
    ids = float32.encode("The capital of France is", False)
    wide, half = float32.start([ids])[0][0], torch_bf16.start([ids])[0][0]
    assert half.dtype == np.float32  # the engine always gets float32 logits
    assert int(np.argmax(wide)) == int(np.argmax(half))
    assert np.abs(wide - half).max() < 1.0  # measured 0.3-0.5 on this prompt
