"""A run as DataFrames and Parquet files, checked against the run log read with sqlite3 here.

The oracle is the SQLite file itself, read by plain SQL in this test (not by RunStore or
sampler.runlog.frames); the Parquet files are read back with pyarrow alone.
"""

import gc
import json
import math
import sqlite3
from pathlib import Path

import pytest
from test_bad_input import run_cli

pd = pytest.importorskip("pandas")
pq = pytest.importorskip("pyarrow.parquet")

from sampler.engine.stats import TELEMETRY  # noqa: E402
from sampler.runlog import completions_frame, iter_step_frames, steps_frame  # noqa: E402
from sampler.runlog.parquet import export_parquet  # noqa: E402
from sampler.runlog.schema import STEP_STATS  # noqa: E402
from sampler.runlog.store import RunStore  # noqa: E402

MARKOV = "synthetic:markov?vocab=300&sharpness=2.0&seed=1"
STEP_COLUMNS = ["row_index", "step", "token", "base_argmax", *STEP_STATS]


def sweep(db: Path, *options: str) -> str:
    """A small sweep (2 temperatures x 2 samples, 6 tokens) logged in ``db``; its run id."""
    result = run_cli("sweep", "--model", MARKOV, "--prompt", "kalo", "--temperatures", "0.5,1.3",
                     "--samples", "2", "--max-new-tokens", "6", "--seed", "3", "--top-k", "40",
                     *options, "--db", str(db))
    assert result.exit_code == 0, result.output
    gc.collect()  # the command's store closes now, not mid-test
    return read_sql(db, "SELECT id FROM runs ORDER BY created_at DESC")[0]["id"]


def read_sql(db: Path, query: str, *args) -> list[dict]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(query, args)]
    finally:
        conn.close()


def same(a, b) -> bool:
    """Equal, with SQL NULL, NaN and pandas' NA all meaning 'no value'."""
    missing_a = a is None or a is pd.NA or (isinstance(a, float) and math.isnan(a))
    missing_b = b is None or b is pd.NA or (isinstance(b, float) and math.isnan(b))
    return missing_a == missing_b and (missing_a or a == b)


def test_completions_frame_is_the_logged_rows(tmp_path):
    db = tmp_path / "log.db"
    run_id = sweep(db)
    stored = read_sql(db, "SELECT * FROM completions WHERE run_id = ? ORDER BY row_index", run_id)
    with RunStore(db) as store:
        frame = completions_frame(store, "latest")
    assert len(frame) == len(stored) == 4
    for got, row in zip(frame.to_dict("records"), stored, strict=True):
        params = json.loads(row["params"])
        assert got["run_id"] == run_id and got["seed"] == params["seed"] == 3
        for name in ("row_index", "prompt", "sample", "temperature", "mode", "text",
                     "finish_reason", "prompt_tokens"):
            assert got[name] == row[name], name
        assert got["token_count"] == len(json.loads(row["token_ids"]))
        for name, value in params.items():
            if name in ("temperature", "mode", "seed"):
                continue  # the row's own columns, checked above
            expected = json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) \
                else value
            assert got[name] == expected, name
        extra = json.loads(row["extra"])
        for name, value in extra.items():  # a sweep's sample 0 keeps the first step's tops
            assert json.loads(got[f"extra_{name}"]) == value
    assert frame["top_k"].tolist() == [40] * 4
    assert str(frame["row_index"].dtype) == "int64" and str(frame["top_k"].dtype) == "int64"
    assert str(frame["temperature"].dtype) == "float64" and str(frame["seed"].dtype) == "Int64"


def test_steps_frame_is_the_logged_steps(tmp_path):
    db = tmp_path / "log.db"
    run_id = sweep(db, "--mirostat", "2", "--top-k", "0")  # mirostat_mu is telemetry a sweep stores
    stored = read_sql(db, f"SELECT {', '.join(STEP_COLUMNS)} FROM steps WHERE run_id = ? "
                          "ORDER BY row_index, step", run_id)
    with RunStore(db) as store:
        frame = steps_frame(store, run_id[:12])  # a unique prefix names the run
    assert list(frame.columns) == STEP_COLUMNS and len(frame) == len(stored) > 0
    for got, row in zip(frame.to_dict("records"), stored, strict=True):
        assert all(same(got[name], row[name]) for name in STEP_COLUMNS), (got, row)
    assert frame["mirostat_mu"].notna().all() and frame["dry_match"].isna().all()
    assert {str(frame[name].dtype) for name in ("row_index", "step", "token")} == {"int64"}
    assert str(frame["kept_tokens"].dtype) == str(frame["base_argmax"].dtype) == "Int64"
    assert {str(frame[name].dtype) for name in STEP_STATS if name != "kept_tokens"} == {"float64"}


def long_run(db: Path, rows: int = 3, steps: int = 1001) -> str:
    """A run stored directly: ``rows`` completions of ``steps`` steps, each value telling its
    place; base_argmax missing on odd steps (as before migration 002), telemetry on even."""
    completions = []
    for row in range(rows):
        step_records = []
        for step in range(steps):
            record = dict.fromkeys(STEP_STATS, row + step / 10_000) | {"token": step % 50}
            record |= {"kept_tokens": step + 1}
            record |= {"base_argmax": step % 7} if step % 2 == 0 else {}
            record |= {name: None for name in TELEMETRY} if step % 2 else {}
            step_records.append(record)
        completions.append({
            "prompt": "p", "sample": row, "temperature": 1.0, "mode": "sample",
            "params": {"seed": 5, "top_k": 0}, "text": "t", "token_ids": [0] * steps,
            "finish_reason": "length", "prompt_tokens": 1, "steps": step_records,
        })
    with RunStore(db) as store:
        return store.add_run("sweep", "toy", "f00d", {}, {}, completions)


def test_steps_come_in_chunks_that_make_the_whole(tmp_path):
    db = tmp_path / "log.db"
    run_id = long_run(db)
    with RunStore(db) as store:
        chunks = list(iter_step_frames(store, run_id, chunk_rows=1000))
        whole = steps_frame(store, run_id)
    # 3 x 1001 steps: three full chunks and one of 3; each chunk has the dtypes of the whole
    assert [len(chunk) for chunk in chunks] == [1000, 1000, 1000, 3]
    assert all((chunk.dtypes == whole.dtypes).all() for chunk in chunks)
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)
    assert whole["base_argmax"].isna().sum() == 3 * 500  # the odd steps
    stored = read_sql(db, "SELECT row_index, step, kept_tokens, entropy_final FROM steps "
                          "ORDER BY row_index, step")
    assert whole[["row_index", "step", "kept_tokens", "entropy_final"]].to_dict("records") == \
        stored


def test_parquet_files_equal_the_frames_and_are_written_in_row_groups(tmp_path):
    db = tmp_path / "log.db"
    run_id = long_run(db)
    with RunStore(db) as store:
        written = export_parquet(store, run_id, tmp_path / "out", chunk_rows=1000)
        rows, steps = completions_frame(store, run_id), steps_frame(store, run_id)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"{run_id}-completions.parquet", f"{run_id}-steps.parquet"]
    assert written["steps"][1] == 3003 and written["completions"][1] == 3
    # the writer was fed chunk by chunk: one row group per chunk of at most 1000 steps
    metadata = pq.ParquetFile(written["steps"][0]).metadata
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert sizes == [1000, 1000, 1000, 3]
    for frame, path in ((rows, written["completions"][0]), (steps, written["steps"][0])):
        read = pq.read_table(path).to_pandas()
        pd.testing.assert_frame_equal(read.astype(frame.dtypes.to_dict()), frame)


def test_cli_writes_parquet_into_the_named_folder(tmp_path):
    db = tmp_path / "log.db"
    run_id = sweep(db)
    result = run_cli("export", "latest", "--format", "parquet", "--out", "deep/out", "--db",
                     str(db))
    assert result.exit_code == 0, result.output
    steps = pq.read_table(f"deep/out/{run_id}-steps.parquet")
    assert steps.num_rows == read_sql(db, "SELECT count(*) AS n FROM steps")[0]["n"]
    assert f"deep/out/{run_id}-completions.parquet (4 rows)" in result.stdout


def test_a_run_id_cannot_place_files_outside_the_folder(tmp_path):
    db = tmp_path / "log.db"
    sweep(db)
    conn = sqlite3.connect(db)
    with conn:  # a run log written by someone else: its run id climbs out of any folder
        conn.execute("PRAGMA foreign_keys = OFF")
        for table, column in (("runs", "id"), ("completions", "run_id"), ("steps", "run_id")):
            conn.execute(f"UPDATE {table} SET {column} = '../../evil'")
    conn.close()
    (tmp_path / "a" / "b").mkdir(parents=True)
    result = run_cli("export", "../../evil", "--format", "parquet", "--out", "a/b/out",
                     "--db", str(db))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "a" / "b" / "out").iterdir()) == [
        "evil-completions.parquet", "evil-steps.parquet"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"]


def test_readmes_notebook_example_plots_the_logged_entropy_per_temperature(tmp_path, monkeypatch):
    # the five lines README shows, run as written on the default run log ($SAMPLER_DB here)
    import re

    import matplotlib

    matplotlib.use("Agg")
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert len(blocks) == 1 and len(blocks[0].strip().splitlines()) == 5
    db = tmp_path / "notebook.db"
    monkeypatch.setenv("SAMPLER_DB", str(db))
    sweep(db)
    scope: dict = {}
    exec(blocks[0], scope)
    plotted = scope["by_row"].groupby("temperature")["entropy_final"].mean()
    logged = read_sql(db, "SELECT c.temperature AS t, AVG(s.entropy_final) AS h FROM steps s "
                          "JOIN completions c ON c.run_id = s.run_id AND c.row_index = s.row_index "
                          "GROUP BY c.temperature ORDER BY c.temperature")
    assert [row["t"] for row in logged] == list(plotted.index)
    # two float64 means of the same few dozen values, summed in another order: ~n ulps apart
    assert [row["h"] for row in logged] == pytest.approx(list(plotted.values), rel=1e-12)
