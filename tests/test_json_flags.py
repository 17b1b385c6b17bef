"""``--json`` of ``runs``, ``report`` and ``models``: one strict JSON document on stdout.

Strict: Python's parser is given a ``parse_constant`` that refuses ``NaN`` and ``Infinity``,
which ``json.dumps`` writes by default and no other JSON parser reads.
"""

import json

import numpy as np
from click.testing import CliRunner

from sampler.cli import cli
from sampler.runlog.store import RunStore

MARKOV = "synthetic:markov?vocab=50&sharpness=2&seed=1"


def strict(text: str):
    def refuse(constant):
        raise AssertionError(f"{constant} in the JSON output")

    return json.loads(text, parse_constant=refuse)


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


def logged_run(db) -> str:
    """A generate run of 2 temperatures × 3 samples on one prompt (so its intervals are NaN)."""
    result = invoke("generate", "--model", MARKOV, "--prompt", "kalo", "-t", "0.5", "-t", "1.5",
                    "--samples", "3", "--max-new-tokens", "5", "--json", "--db", str(db))
    assert result.exit_code == 0, result.output
    return strict(result.stdout)[0]["run_id"]


def test_runs_json_lists_the_logged_runs_newest_first(tmp_path):
    db = tmp_path / "r.db"
    RunStore(db).close()
    empty = invoke("runs", "--json", "--db", str(db))
    assert empty.exit_code == 0 and strict(empty.stdout) == []
    first, second = logged_run(db), logged_run(db)
    listed = strict(invoke("runs", "--json", "--db", str(db)).stdout)
    assert [run["id"] for run in listed] == [second, first]
    assert listed[0] | {"created_at": None} == {
        "id": second, "created_at": None, "kind": "generate",
        "model": "synthetic:markov?seed=1&sharpness=2.0&vocab=50", "status": "complete",
        "total_rows": 6, "rows_done": 6,
    }
    assert len(strict(invoke("runs", "--json", "--limit", "1", "--db", str(db)).stdout)) == 1


def test_report_json_has_each_temperatures_summary_with_null_for_nan(tmp_path):
    db = tmp_path / "r.db"
    run_id = logged_run(db)
    result = invoke("report", run_id, "--json", "--db", str(db))
    assert result.exit_code == 0, result.output
    document = strict(result.stdout)  # one prompt: NaN intervals must be null, not NaN
    assert document["run"]["id"] == run_id and document["run"]["rows_done"] == 6
    rows = document["temperatures"]
    assert [row["temperature"] for row in rows] == [0.5, 1.5]
    assert rows[0]["length_ci"] == [None, None]
    with RunStore(db) as store:  # the oracle: lengths and steps read back from the log
        completions = store.completions(run_id)
    for row in rows:
        mine = [c for c in completions if c["temperature"] == row["temperature"]]
        assert row["rows"] == len(mine) == 3
        assert row["length"] == np.mean([len(c["token_ids"]) for c in mine])
        steps = [s["entropy_final"] for c in mine for s in c["steps"]]
        assert abs(row["entropy_final"] - np.mean(steps)) < 1e-12  # float sums' rounding


def test_report_json_with_format_or_out_is_one_error_line(tmp_path):
    db = tmp_path / "r.db"
    run_id = logged_run(db)
    for extra in (["--format", "html"], ["--format", "table"], ["--out", str(tmp_path / "x")]):
        result = invoke("report", run_id, "--json", *extra, "--db", str(db))
        assert result.exit_code == 2
        lines = result.stderr.strip().splitlines()
        assert lines == ["error: --json prints the summary table's data: give it without "
                         "--format and --out"], lines
    assert not (tmp_path / "x").exists()


def test_models_json_lists_every_alias_and_its_cache_state(tmp_path):
    from sampler.sources.model_cache import ALIASES

    cache = tmp_path / "cache"
    result = invoke("models", "--json", "--cache-dir", str(cache))
    assert result.exit_code == 0, result.output
    document = strict(result.stdout)
    assert document["cache"] == str(cache)
    assert [model["alias"] for model in document["models"]] == list(ALIASES)
    for model in document["models"]:  # an empty cache: nothing fetched yet
        assert (model["state"], model["size_bytes"], model["path"]) == ("absent", 0, None)
        assert model["download_mb"] == ALIASES[model["alias"]].download_mb
    assert not cache.exists()  # listing never makes the cache
