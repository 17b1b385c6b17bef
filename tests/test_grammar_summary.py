"""Issue 20's done-when: `sampler generate --json-schema S -t 1.5 --samples 8` gives 8 valid
documents, and says what the mask removed (the run's report draws it per step). The oracles:
jsonschema for the documents, and the run log's stored steps for the line's numbers."""

import json
import re
from pathlib import Path

import pytest
from test_bad_input import run_cli

from sampler.runlog.store import RunStore

SCHEMA = Path(__file__).parent / "fixtures" / "grammars" / "person.schema.json"


def test_eight_documents_valid_and_the_mask_s_removed_mass_reported(tmp_path, gguf):
    jsonschema = pytest.importorskip("jsonschema")
    pytest.importorskip("llguidance")
    db = str(tmp_path / "log.db")
    result = run_cli(
        "generate", "--prompt", "Describe a person as JSON.", "--json-schema", str(SCHEMA),
        "-t", "1.5", "--samples", "8", "--db", db,
    )
    assert result.exit_code == 0, (result.output, result.exception)
    with RunStore(db) as store:
        run_id = store.get_run("latest")["id"]
        rows = store.completions(run_id, with_steps=True)
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert len(rows) == 8
    for row in rows:
        jsonschema.validate(json.loads(row["text"]), schema)
    removed = [step["grammar_removed_mass"] for row in rows for step in row["steps"]]
    illegal = sum(step["grammar_top1_illegal"] == 1 for row in rows for step in row["steps"])
    line = result.stdout.strip().splitlines()[-1]
    found = re.match(
        r"grammar: the mask removed ([0-9.]+) of the model's probability per step on average "
        r"\((\d+) steps, 8 rows\); most ([0-9.]+) .*illegal at (\d+) steps",
        line,
    )
    assert found, line
    # the line rounds to 4 decimals: half a unit of the last one
    assert float(found[1]) == pytest.approx(sum(removed) / len(removed), abs=5e-5)
    assert int(found[2]) == len(removed)
    assert float(found[3]) == pytest.approx(max(removed), abs=5e-5)
    assert int(found[4]) == illegal
    assert f"sampler report {run_id} --db {db} --format md (grammar.png)" in line
    out = tmp_path / "report"
    result = run_cli("report", run_id, "--format", "md", "--out", str(out), "--db", db)
    assert result.exit_code == 0, result.output
    assert (out / "grammar.png").is_file() and "grammar.png" in (out / "report.md").read_text()


def test_no_grammar_no_grammar_line(tmp_path):
    result = run_cli(
        "generate", "--prompt", "kalo", "--model", "synthetic:markov?vocab=50&seed=1",
        "--max-new-tokens", "3", "--samples", "2", "--no-log",
    )
    assert result.exit_code == 0, result.output
    assert "grammar:" not in result.output
