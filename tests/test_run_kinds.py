"""Runs that are what they say: each kind's planned rows, resume by kind, migration 003.

The oracle for the migration is the committed dump of a run log written by sampler 0.1.0
(`tests/fixtures/runlog_v0.1.0.sql`), read with plain SQL; the oracle for generated rows is an
uninterrupted run, or `sampler generate` drawing the same (seed, sample) streams.
"""

import json
import math
import sqlite3
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import kill_once

from sampler.cli import cli
from sampler.errors import InvalidInputError
from sampler.experiments.config import RunConfig
from sampler.experiments.runs import RUN_KINDS, planned_rows
from sampler.runlog.store import RunStore

MARKOV = "synthetic:markov?vocab=300&sharpness=2.0&seed=1"
COMPARE_ARGS = ["--model", MARKOV, "--prompt", "kalo mesu", "-t", "1.2", "--samples", "3",
                "--max-new-tokens", "15", "--seed", "4"]


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args))


def assert_same_rows(got: list[dict], expected: list[dict]) -> None:
    """Rows equal field by field and token by token; step statistics to 1e-12.

    A row's tokens never depend on the batch around it, but the last bits of a statistic such
    as kept_mass can (0.9999999999999999 in one batch, 1.0 in another).
    """
    def fields(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in row.items() if k != "steps"}
                | {"tokens": [s["token"] for s in row["steps"]]} for row in rows]

    assert fields(got) == fields(expected)
    for row, other in zip(got, expected, strict=True):
        for step, same in zip(row["steps"], other["steps"], strict=True):
            assert step.keys() == same.keys()
            for name, value in step.items():
                if isinstance(value, float) and isinstance(same[name], float):
                    assert math.isclose(value, same[name], rel_tol=1e-12, abs_tol=1e-15), name
                else:
                    assert value == same[name], name


def check_database(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_compare_stores_its_plan_and_shows_complete(tmp_path):
    db = tmp_path / "c.db"
    result = run_cli("compare", *COMPARE_ARGS, "--db", str(db))
    assert result.exit_code == 0, result.output
    listing = run_cli("runs", "--db", str(db)).output.splitlines()
    assert listing[1].split()[2] == "compare" and listing[1].split()[-2:] == ["complete", "4/4"]
    with RunStore(db) as store:
        rows = store.completions("latest")
    assert [(c["row_index"], c["temperature"], c["sample"]) for c in rows] == [
        (0, 0.0, 0), (1, 1.2, 0), (2, 1.2, 1), (3, 1.2, 2)]
    # `generate` draws sample i from the same (seed, i) stream: the same tokens
    common = ["generate", "--model", MARKOV, "--prompt", "kalo mesu", "--max-new-tokens", "15",
              "--seed", "4", "--json", "--no-log"]
    sampled = json.loads(run_cli(*common, "-t", "1.2", "--samples", "3").output)
    greedy = json.loads(run_cli(*common, "-t", "0").output)
    assert [c["token_ids"] for c in rows] == [
        greedy["token_ids"], *(s["token_ids"] for s in sampled)]


def test_compare_takes_the_sampling_flags_and_greedy_keeps_the_shaping(tmp_path):
    db = tmp_path / "c.db"
    flags = ["--top-k", "5", "--repetition-penalty", "1.5"]
    result = run_cli("compare", *COMPARE_ARGS, *flags, "--db", str(db))
    assert result.exit_code == 0, result.output
    with RunStore(db) as store:
        rows = store.completions("latest")
    greedy, *sampled = rows
    assert all(c["params"]["top_k"] == 5 for c in sampled)
    assert greedy["params"]["repetition_penalty"] == 1.5 and greedy["temperature"] == 0.0
    # the oracle: `generate` at τ = 0 with the same penalty, and without it
    common = ["generate", "--model", MARKOV, "--prompt", "kalo mesu", "--max-new-tokens", "15",
              "--seed", "4", "--json", "--no-log", "-t", "0"]
    penalised = json.loads(run_cli(*common, "--repetition-penalty", "1.5").output)
    plain = json.loads(run_cli(*common).output)
    assert greedy["token_ids"] == penalised["token_ids"] != plain["token_ids"]


@pytest.mark.parametrize("deleted", [{1, 3}, {0}, {0, 1, 2, 3}])
def test_resume_regenerates_exactly_the_missing_rows_of_a_compare(tmp_path, deleted):
    db = tmp_path / "c.db"
    assert run_cli("compare", *COMPARE_ARGS, "--db", str(db)).exit_code == 0
    with RunStore(db) as store:
        run_id = store.get_run("latest")["id"]
        original = store.completions(run_id)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA foreign_keys = ON")  # their steps go with them
        conn.executemany("DELETE FROM completions WHERE run_id = ? AND row_index = ?",
                         [(run_id, i) for i in deleted])
        conn.execute("UPDATE runs SET status = 'running' WHERE id = ?", (run_id,))
    result = run_cli("sweep", "--resume", run_id[:15], "--db", str(db))
    assert result.exit_code == 0, result.output
    assert f"4 rows ({4 - len(deleted)} already done)" in result.stderr
    with RunStore(db) as store:
        assert_same_rows(store.completions(run_id), original)  # params, tokens, no extras
        run = store.get_run(run_id)
    assert (run["status"], run["rows_done"], run["total_rows"]) == ("complete", 4, 4)
    check_database(db)


def test_resume_finishes_a_compare_killed_mid_way(tmp_path):
    args = ["--model", MARKOV, "--prompt", "kalo mesu", "-t", "1.2", "--samples", "30",
            "--max-new-tokens", "1500", "--seed", "4"]
    reference = tmp_path / "reference.db"
    assert run_cli("compare", *args, "--db", str(reference)).exit_code == 0
    killed = tmp_path / "killed.db"
    command = [sys.executable, "-m", "sampler", "compare", *args, "--db", str(killed)]
    kill_once(command, killed, "SELECT count(*) FROM runs", 1)
    with RunStore(killed) as store:
        run = store.get_run("latest")
    assert run["status"] == "running" and run["rows_done"] < 31 == run["total_rows"]
    resumed = run_cli("sweep", "--resume", run["id"], "--db", str(killed))
    assert resumed.exit_code == 0, resumed.output
    with RunStore(reference) as ref, RunStore(killed) as store:
        assert_same_rows(store.completions(run["id"]), ref.completions("latest"))
        assert store.get_run(run["id"])["status"] == "complete"


def test_generate_run_resumes_its_own_rows_without_sweep_extras(tmp_path):
    db = tmp_path / "g.db"
    args = ["generate", "--model", MARKOV, "--prompt", "kalo", "-t", "0.5", "-t", "1",
            "--samples", "2", "--max-new-tokens", "6", "--seed", "3", "--db", str(db)]
    assert run_cli(*args).exit_code == 0
    with RunStore(db) as store:
        run = store.get_run("latest")
        original = store.completions(run["id"])
    assert (run["kind"], run["rows_done"], run["total_rows"]) == ("generate", 4, 4)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM completions WHERE row_index = 2")
    assert run_cli("sweep", "--resume", run["id"], "--db", str(db)).exit_code == 0
    with RunStore(db) as store:
        assert_same_rows(store.completions(run["id"]), original)
    assert all(c["extra"] == {} for c in original)


def test_resume_of_an_unknown_kind_is_one_error_line(tmp_path):
    db = tmp_path / "x.db"
    config = RunConfig(model=MARKOV, prompts=("kalo",), temperatures=(1.0,), samples=1)
    with RunStore(db) as store:
        run_id = store.create_run("mystery", MARKOV, MARKOV, config.to_dict(), {}, 1)
    result = run_cli("sweep", "--resume", run_id, "--db", str(db))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: run kind 'mystery' is unknown")
    assert len(result.stderr.strip().splitlines()) == 1


def test_each_kind_plans_its_rows():
    config = RunConfig(model=MARKOV, prompts=("a", "b"), temperatures=(0.0, 0.7), samples=2,
                         seed=9)
    assert set(RUN_KINDS) == {"sweep", "generate", "compare"}
    assert planned_rows("sweep", config) == planned_rows("generate", config) == config.rows()
    assert len(config.rows()) == 2 * 2 * 2
    with pytest.raises(InvalidInputError, match="a compare run needs one prompt"):
        planned_rows("compare", config)
    one = RunConfig(model=MARKOV, prompts=("a",), temperatures=(0.0, 0.7), samples=3, seed=9)
    rows = planned_rows("compare", one)
    assert [(r.prompt, r.params.temperature, r.sample, r.params.seed) for r in rows] == [
        ("a", 0.0, 0, None), ("a", 0.7, 0, 9), ("a", 0.7, 1, 9), ("a", 0.7, 2, 9)]
    with pytest.raises(InvalidInputError, match="run kind 'nope' is unknown"):
        planned_rows("nope", one)



def test_compare_plan_is_what_generation_compare_runs():
    from sampler.generation.compare import compare
    from sampler.sources import load_source

    config = RunConfig(model=MARKOV, prompts=("kalo mesu",), temperatures=(0.0, 1.3),
                         samples=3, max_new_tokens=4, seed=6, order="vllm")
    greedy, comparisons = compare(load_source(MARKOV), "kalo mesu", config.params(1.3), 3, 4)
    ran = [greedy.row, *(c.completion.row for c in comparisons)]
    assert ran == planned_rows("compare", config)

# Migration 003 on the run log sampler 0.1.0 wrote: the dump, read with plain SQL, is the oracle.

FIXTURE = Path(__file__).parent / "fixtures" / "runlog_v0.1.0.sql"
SWEEP, GENERATE = "20261125-162421-0b40", "20261125-162422-a9d5"
COMPARE, INTERRUPTED = "20261125-162422-46b1", "20261125-162426-05a0"
# a greedy row repeated at indices 1 and 2 with its steps, as `sweep --resume` did in 0.1.0
GREEDY_REPEATS = "".join(
    f"""INSERT INTO completions SELECT run_id, {i}, prompt, {i}, temperature, mode, params, text,
        token_ids, finish_reason, prompt_tokens, extra FROM completions
        WHERE run_id = '{COMPARE}' AND row_index = 0;
    INSERT INTO steps SELECT run_id, {i}, step, token, entropy_base, entropy_temp, entropy_final,
        surprisal, surprisal_base, top1_prob, kept_tokens, kept_mass, kl_final_base, base_argmax
        FROM steps WHERE run_id = '{COMPARE}' AND row_index = 0;
    UPDATE runs SET status = 'complete' WHERE id = '{COMPARE}';"""
    for i in (1, 2)
)


def load_dump(path: Path, tweak: str = "") -> Path:
    """The fixture written into a fresh database file, as 0.1.0 left it (plus ``tweak``)."""
    conn = sqlite3.connect(path)
    conn.executescript(FIXTURE.read_text() + tweak)
    conn.close()
    return path


def dump_rows(tweak: str = "") -> dict[tuple[str, int], dict]:
    """Every completion in the dump with its steps, by (run, row index), read with plain SQL."""
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    conn.executescript(FIXTURE.read_text() + tweak)
    rows = {}
    for c in conn.execute("SELECT * FROM completions"):
        steps = conn.execute("SELECT * FROM steps WHERE run_id = ? AND row_index = ? "
                             "ORDER BY step", (c["run_id"], c["row_index"])).fetchall()
        rows[c["run_id"], c["row_index"]] = {
            "temperature": c["temperature"], "sample": c["sample"], "text": c["text"],
            "token_ids": json.loads(c["token_ids"]), "params": json.loads(c["params"]),
            "steps": [{k: v for k, v in dict(s).items() if k not in ("run_id", "row_index")}
                      for s in steps],
        }
    return rows


def stored(store: RunStore, run_id: str) -> dict[int, dict]:
    """A run's completions as the store gives them, in the shape of :func:`dump_rows`."""
    return {
        c["row_index"]: {
            "temperature": c["temperature"], "sample": c["sample"], "text": c["text"],
            "token_ids": c["token_ids"], "params": c["params"],
            "steps": [{"base_argmax": s.get("base_argmax")} | s for s in c["steps"]],
        }
        for c in store.completions(run_id)
    }


@pytest.mark.parametrize("tweak", ["", GREEDY_REPEATS], ids=["as-released", "resumed-compare"])
def test_migration_gives_every_old_run_its_plan(tmp_path, tweak):
    before = dump_rows()  # the oracle: the dump as released, without the repeats
    db = load_dump(tmp_path / "old.db", tweak)
    with RunStore(db) as store:
        runs = {r["id"]: (r["kind"], r["status"], r["rows_done"], r["total_rows"])
                for r in store.list_runs()}
        assert runs == {SWEEP: ("sweep", "complete", 8, 8),
                        GENERATE: ("generate", "complete", 2, 2),
                        COMPARE: ("compare", "complete", 4, 4),
                        INTERRUPTED: ("sweep", "running", 3, 4)}
        compare = stored(store, COMPARE)
        assert list(compare) == [0, 1, 2, 3]
        assert [c["temperature"] for c in compare.values()] == [0.0, 0.8, 0.8, 0.8]
        assert [c["sample"] for c in compare.values()] == [0, 0, 1, 2]
        # greedy stays at 0; sample i moves from 3 + i to 1 + i, its steps with it
        for new, old in {0: 0, 1: 3, 2: 4, 3: 5}.items():
            assert compare[new] == before[COMPARE, old]
        for run_id in (SWEEP, GENERATE, INTERRUPTED):
            assert stored(store, run_id) == {
                index: row for (run, index), row in before.items() if run == run_id}
        applied = [r[0] for r in store._conn.execute("SELECT name FROM schema_migrations")]
        assert "003_run_kinds" in applied
        steps = store._conn.execute("SELECT count(*) FROM steps").fetchone()[0]
        assert steps == sum(len(row["steps"]) for row in before.values())
    check_database(db)
    listing = run_cli("runs", "--db", str(db)).output
    assert next(line for line in listing.splitlines() if COMPARE in line).split()[-2:] == [
        "complete", "4/4"]


def test_migrated_interrupted_sweep_resumes_to_its_plan(tmp_path):
    db = load_dump(tmp_path / "old.db")
    before = dump_rows()
    result = run_cli("sweep", "--resume", INTERRUPTED, "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "4 rows (3 already done)" in result.stderr
    with RunStore(db) as store:
        run = store.get_run(INTERRUPTED)
        assert (run["status"], run["rows_done"], run["total_rows"]) == ("complete", 4, 4)
        resumed = stored(store, INTERRUPTED)
        config = run["config"]
    check_database(db)
    assert {i: resumed[i] for i in range(3)} == {i: before[INTERRUPTED, i] for i in range(3)}
    # The missing row is the one an uninterrupted sweep of the same config draws there, with
    # the 0.1.0 streams keyed by (seed, sample) that migration 004 recorded for old runs.
    assert config["stream"] == "sample"
    fresh = tmp_path / "fresh.db"
    toml = tmp_path / "same.toml"
    toml.write_text(
        f'model = "{config["model"]}"\nprompts = {json.dumps(config["prompts"])}\n'
        f'temperatures = {json.dumps(config["temperatures"])}\nsamples = {config["samples"]}\n'
        f'max_new_tokens = {config["max_new_tokens"]}\nseed = {config["seed"]}\n'
        'stream = "sample"\n'
    )
    assert run_cli("sweep", "--config", str(toml), "--db", str(fresh)).exit_code == 0
    with RunStore(fresh) as store:
        assert_same_rows([resumed[3]], [stored(store, store.get_run("latest")["id"])[3]])
        assert (resumed[3]["temperature"], resumed[3]["sample"]) == (0.9, 1)


def test_migration_makes_a_greedy_only_compare_config_loadable(tmp_path):
    # `compare -t 0` logged temperatures [0, 0], which RunConfig refuses as a duplicate
    tweak = (f"UPDATE runs SET config = json_set(config, '$.temperatures', json('[0.0, 0.0]')) "
             f"WHERE id = '{COMPARE}';")
    db = load_dump(tmp_path / "old.db", tweak)
    with RunStore(db) as store:
        config = store.get_run(COMPARE)["config"]
    assert config["temperatures"] == [0.0] and config["samples"] == 3
    assert len(planned_rows("compare", RunConfig.from_dict(config))) == 4
    result = run_cli("sweep", "--resume", COMPARE, "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "4 rows (4 already done)" in result.stderr
