"""`sampler softmax` through click's runner: table, JSON contract, plot, bad input."""

import json
import math

import pytest
from click.testing import CliRunner

from sampler.cli import cli


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, ["softmax", *args])

    return invoke


def test_default_cheat_sheet_table(run):
    result = run()
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "labels A, B, C" in lines[0]
    header = lines[2].split()
    assert header[:4] == ["τ", "P(A)", "P(B)", "P(C)"]
    taus = [line.split()[0] for line in lines[3:10]]
    assert taus == ["0", "0.1", "0.5", "1", "2", "5", "10"]
    row_one = lines[6].split()
    assert row_one[1:4] == ["0.836019", "0.113143", "0.050838"]
    assert row_one[4] == "0.547737"
    assert "log-softmax  -0.179104  -2.179104  -2.979104" in result.output
    for word in ("max", "min", "argmax", "argmin", "hardmax"):
        assert f"\n  {word} " in result.output


def test_json_contract(run):
    result = run("3.0", "1.0", "0.2", "-t", "1", "--json")
    assert result.exit_code == 0
    sheet = json.loads(result.output)
    for key in (
        "logits",
        "labels",
        "rows",
        "max",
        "min",
        "argmax",
        "argmin",
        "hardmax",
        "log_softmax",
    ):
        assert key in sheet
    (row,) = sheet["rows"]
    assert set(row) >= {
        "temperature",
        "probs",
        "log_probs",
        "entropy_nats",
        "entropy_bits",
        "argmax",
    }
    z = sum(math.exp(v) for v in (3.0, 1.0, 0.2))
    # float64 of three terms through JSON (repr round-trips): a few ulps of numbers ≤ 1
    assert row["probs"] == pytest.approx([math.exp(v) / z for v in (3.0, 1.0, 0.2)], abs=1e-12)
    # the cheat sheet's printed 5 and 6 decimals: half a unit of the last
    assert row["probs"] == pytest.approx([0.83602, 0.11314, 0.05084], abs=5e-6)
    assert row["entropy_nats"] == pytest.approx(0.547737, abs=5e-7)
    assert row["entropy_bits"] == pytest.approx(row["entropy_nats"] / math.log(2), rel=4e-16)
    assert (sheet["max"], sheet["min"], sheet["argmax"], sheet["argmin"]) == (3.0, 0.2, 0, 2)
    assert sheet["hardmax"] == [1.0, 0.0, 0.0]
    assert sheet["labels"] == ["A", "B", "C"]


def test_negative_and_masked_logits_with_labels(run):
    result = run("-1.5", "2", "-inf", "--labels", "cat,dog,eel", "-t", "0", "-t", "1", "--json")
    assert result.exit_code == 0, result.output
    sheet = json.loads(result.output)
    assert sheet["logits"] == [-1.5, 2.0, None]
    assert sheet["rows"][0]["probs"] == [0.0, 1.0, 0.0]
    assert sheet["rows"][1]["log_probs"][2] is None
    assert sheet["argmax_label"] == "dog" and sheet["argmin_label"] == "eel"


def test_plot_png_and_svg(run, tmp_path):
    for name, magic in (("sheet.png", b"\x89PNG"), ("sheet.svg", b"<?xml")):
        target = tmp_path / name
        result = run("--plot", str(target))
        assert result.exit_code == 0, result.output
        assert target.read_bytes().startswith(magic)
        assert target.stat().st_size > 5_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["1", "abc"], "logit 'abc' is not a number"),
        (["1", "nan"], "logit 'nan' is not allowed"),
        (["1", "inf"], "logit 'inf' is not allowed"),
        (["-inf", "-inf"], "every logit is -inf"),
        (["1", "2", "-t", "-0.5"], "temperature=-0.5 is out of range: allowed temperature >= 0"),
        (["1", "2", "-t", "nan"], "temperature=nan is out of range"),
        (["1", "2", "-t", "warm"], "temperature='warm' is not a number"),
        (["1", "2", "-t", "1", "-t", "1.0"], "temperature 1 is given twice"),
        (["1", "2", "--labels", "a,b,c"], "3 labels given for 2 logits"),
        (["--plot", "out.gif"], "unknown extension"),
        (["--plot", "no/such/folder/x.png"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2(run, args, message):
    result = run(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_failed_plot_keeps_the_old_file(run, tmp_path):
    target = tmp_path / "keep.png"
    target.write_bytes(b"old")
    result = run("1", "nan", "--plot", str(target))
    assert result.exit_code == 2
    assert target.read_bytes() == b"old"


def test_real_process_exit_code_and_no_traceback():
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "sampler", "softmax", "1", "nan"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: logit 'nan'") and "Traceback" not in done.stderr


def test_bare_sampler_prints_its_help_and_exits_0():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "sampler"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith("Usage: sampler [OPTIONS] COMMAND")
    for command in ("softmax", "generate", "sweep", "serve"):
        assert f"  {command} " in done.stdout
