"""Shared test settings: hypothesis profiles that are deterministic on CI."""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=200,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def build_tiny_llama(folder, max_positions: int = 128, seed: int = 0):
    """A randomly initialised 2-layer Llama with a word-level tokenizer, saved as safetensors.

    No download: the config, weights and tokenizer are all made here.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<pad>", "<s>", "</s>"] + [f"w{i}" for i in range(125)]
    tokenizer = Tokenizer(
        models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="w0")
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="w0",
    )
    fast.chat_template = (
        "{% for m in messages %}<s> {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}w1{% endif %}"
    )
    config = LlamaConfig(
        vocab_size=len(words),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        initializer_range=0.5,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    pytest.importorskip("transformers")
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def hf_greedy(source, prompt_ids: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """transformers' own greedy decoding of a left-padded batch of token ids, cut at EOS."""
    import torch

    width = max(len(p) for p in prompt_ids)
    ids = torch.tensor([[source.pad_id] * (width - len(p)) + p for p in prompt_ids])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids])
    batch = {"input_ids": ids, "attention_mask": mask}
    model = source.model
    out = model.generate(
        **batch, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=source.pad_id
    )
    rows = []
    for row in out[:, batch["input_ids"].shape[1] :].tolist():
        ended = [i for i, t in enumerate(row) if t in source.eos_token_ids]
        rows.append(row[: ended[0]] if ended else row)
    return rows


@pytest.fixture(autouse=True)
def isolated_working_folder(tmp_path, monkeypatch):
    """Every test runs in its own empty folder, and its default run log is its own too: never
    the user's (``XDG_DATA_HOME`` points beside ``tmp_path``, so listings of ``tmp_path`` stay
    as the test made them; a ``SAMPLER_DB`` of the user's is ignored)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SAMPLER_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home_of(tmp_path)))


def data_home_of(tmp_path):
    """The ``XDG_DATA_HOME`` of the test whose folder is ``tmp_path``."""
    return tmp_path.parent / f"{tmp_path.name}-data"


def parity_logits(vocab: int, seed: int, boost: float = 9.0):
    """Three rows of continuous random logits without ties (even in float32), for parity tests."""
    import numpy as np

    rng = np.random.default_rng([vocab, seed])
    rows = rng.normal(0, 2.5, (3, vocab))
    rows[1] *= 1.6
    rows[2, rng.choice(vocab, 4, replace=False)] += boost  # a few dominant tokens
    if any(len(np.unique(row)) < vocab for row in rows.astype(np.float32)):
        return parity_logits(vocab, seed + 1, boost)
    return rows


def penalty_history(logits, seed: int):
    """Per row, 150 tokens, mostly among the 60 most likely so the penalties bite."""
    import numpy as np

    rng = np.random.default_rng(seed)
    history = []
    for row in logits:
        likely = np.argsort(-row)[:60]
        tokens = np.concatenate([rng.choice(likely, 110), rng.integers(0, len(row), 40)])
        history.append(rng.permutation(tokens))
    return history


def kill_once(command: list[str], db, query: str, enough: int, timeout: float = 60.0) -> None:
    """Start ``command``, SIGKILL it once ``query`` on the SQLite file ``db`` counts ``enough``.

    The database may not exist yet, or be mid-write, while the process starts: those reads are
    retried until ``timeout``; the process is killed then whatever the count.
    """
    import signal
    import sqlite3
    import subprocess
    import time

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, count = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and count < enough:
        time.sleep(0.02)
        if db.exists():
            try:
                with sqlite3.connect(db) as conn:
                    count = conn.execute(query).fetchone()[0]
            except sqlite3.Error:
                continue
    process.send_signal(signal.SIGKILL)
    process.wait()


def import_llama_cpp_or_skip():
    """llama-cpp-python, or a skip locally; under CI=true its absence fails (README installs it)."""
    try:
        import llama_cpp
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip(
            "llama-cpp-python is not installed: pip install -e '.[llamacpp]'",
            allow_module_level=True,
        )
    return llama_cpp


@pytest.fixture(scope="module")
def gguf():
    """SmolLM2 on the llama.cpp backend (README's first command caches it; CI must have it)."""
    from sampler.sources import load_source
    from sampler.sources.model_cache import cache_root, model_folder

    if not (model_folder("smollm2-135m", cache_root()) / "manifest.json").is_file():
        if os.environ.get("CI"):
            pytest.fail("SmolLM2 is not cached: README's first command must fetch it first")
        pytest.skip("SmolLM2 is not cached: run README's first command to fetch it")
    return load_source("smollm2-135m-gguf")



def resume_after_losing(db: str, run_id: str, rows: tuple[int, ...]) -> list[dict]:
    """Delete ``rows`` of a logged run (as an interrupted sweep would have left it), finish it
    with ``sweep --resume``, and return the run's completions, steps included."""
    import sqlite3

    from click.testing import CliRunner

    from sampler.cli import cli
    from sampler.runlog.store import RunStore

    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        marks = ", ".join("?" * len(rows))
        conn.execute(f"DELETE FROM completions WHERE row_index IN ({marks})", rows)
    conn.close()
    result = CliRunner().invoke(cli, ["sweep", "--resume", run_id, "--db", db])
    assert result.exit_code == 0, result.output
    with RunStore(db) as store:
        return store.completions(run_id)


@pytest.fixture(scope="session")
def browser():
    """One headless chromium (Debian's, see tests/chromium.py) for the whole session: one
    Playwright instance may run per thread, so every browser test shares this one."""
    from chromium import executable
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable(), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()
