"""`sampler chain --prompt ... --plot FILE`: the picture is written where named and nowhere
else; each bad input is one `error:` line, exit code 2, no traceback and no file. (Each bad
input below failed before model rows existed: `--model`, `--prompt` and `--plot` were unknown,
so click read them as logits and the error named a logit, not the flag.)"""

import os
from pathlib import Path

import pytest
from test_bad_input import one_error_line, run_cli

SCHEMA = Path(__file__).parent / "fixtures" / "grammars" / "person.schema.json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_ok(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    # a 20-bar figure with a three-line title at 110 dpi: tens of kB; under 10 kB would be a
    # blank canvas, over 2 MB not a plain bar chart
    assert 10_000 < len(data) < 2_000_000, len(data)


def _only(folder: Path, name: str) -> None:
    """``folder`` holds ``name`` and nothing else (no temporary or stray file)."""
    assert sorted(os.listdir(folder)) == [name]


def test_the_picture_of_a_masked_step_is_written_where_named_and_only_there(
    tmp_path, monkeypatch, gguf
):
    pytest.importorskip("llguidance")
    pytest.importorskip("matplotlib")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a stray relative write would land here
    out = tmp_path / "figures"
    out.mkdir()
    target = out / "grammar_step.png"
    result = run_cli(
        "chain", "--prompt", "Describe a person as JSON.", "--written", '{"name": "Ada", "',
        "--json-schema", str(SCHEMA), "--plot", str(target),
    )
    assert result.exit_code == 0, (result.output, result.exception)
    _png_ok(target)
    _only(out, "grammar_step.png")
    assert os.listdir(elsewhere) == []
    assert f"plot written to {target}" in result.stdout
    assert "grammar: allows" in result.stdout and "removed mass" in result.stdout


def test_the_picture_of_a_plain_chain_is_written_too(tmp_path, tiny_model_dir):
    pytest.importorskip("matplotlib")
    target = tmp_path / "step.png"
    result = run_cli(
        "chain", "--model", str(tiny_model_dir), "--prompt", "w3 w4", "--raw", "--top-k", "3",
        "--plot", str(target),
    )
    assert result.exit_code == 0, (result.output, result.exception)
    _png_ok(target)
    _only(tmp_path, "step.png")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--prompt", "hi", "--model", "no-such-model-alias"],
         ["'no-such-model-alias'", "known aliases"]),
        (["1", "2", "3", "--model", "smollm2-135m-gguf", "--prompt", "hi"],
         ["LOGITS (1 2 3) and --prompt", "not both"]),
        (["--model", "smollm2-135m-gguf"], ["--model smollm2-135m-gguf", "give --prompt"]),
        (["--written", "abc"], ["--written abc", "give --prompt"]),
        (["--prompt", "hi", "--labels", "a,b"], ["--labels a,b", "its own tokens"]),
        (["--prompt", "hi", "--history", "a,b"], ["--history a,b", "its own tokens"]),
        (["--prompt", "hi", "--top", "0"], ["--top 0", "use 1 or more"]),
        (["1", "2", "--regex", "[ab]"], ["a grammar needs a model's vocabulary", "--prompt"]),
        (["1", "2", "--plot", "@step.png"], ["draws a model's step", "--prompt"]),
        (["--prompt", "hi", "--plot", "@no/such/folder/x.png"], ["does not exist"]),
        (["--prompt", "hi", "--plot", "@step.gif"], ["unknown extension", ".png"]),
        (["--prompt", "hi", "--order", "all", "--plot", "@step.png"],
         ["--plot draws one chain", "not all"]),
    ],
)
def test_a_bad_model_row_input_is_one_error_line_and_writes_nothing(tmp_path, args, fragments):
    folder = tmp_path / "out"
    folder.mkdir()
    filled = [str(folder / a[1:]) if a.startswith("@") else a for a in args]
    one_error_line(run_cli("chain", *filled), *fragments)
    assert os.listdir(folder) == []


def test_written_text_the_grammar_forbids_is_one_error_line_naming_it(tmp_path, gguf):
    pytest.importorskip("llguidance")
    target = tmp_path / "step.png"
    result = run_cli(
        "chain", "--prompt", "Describe a person as JSON.", "--written", '{"name": "Ada"}',
        "--json-schema", str(SCHEMA), "--plot", str(target),
    )
    # "age" and "pets" are required: the token that closes the object ("}) is illegal there
    one_error_line(result, """the written text '{"name": "Ada"}'""", "position 6", "not allowed")
    assert not target.exists()


def test_a_source_without_a_vocabulary_is_refused_with_its_own_reason():
    result = run_cli(
        "chain", "--prompt", "kalo", "--model", "synthetic:markov?vocab=50&seed=1",
        "--regex", "[a-z]+", "--written", "ab",
    )
    line = one_error_line(result, "needs a model's own vocabulary")
    assert "written text" not in line
