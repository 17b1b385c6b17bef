"""llama.cpp as a logit source, with llama.cpp itself as the oracle.

Needs llama-cpp-python (README's first command installs it with the ``all`` extra) and the
cached SmolLM2 (the same command fetches it). Locally the tests skip when llama-cpp-python is
missing; under CI=true its absence is a failure, so CI cannot pass without running them.
"""

import subprocess
import sys

import numpy as np
import pytest
from conftest import import_llama_cpp_or_skip

from sampler import SamplingParams
from sampler.generation.generation_row import GenerationRow
from sampler.generation.loop import generate
from sampler.sources import load_source
from sampler.sources.llamacpp_model import LlamaCppSession, context_params
from sampler.sources.model_cache import cache_root, model_folder

llama = import_llama_cpp_or_skip()

PROMPTS = [
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "List three colours.",
]
# A row in a batch, and a session that outgrew its context, give bit-identical logits to the
# row alone (max |difference| 0): asserted exact (one llama.cpp build on both sides).
#
# Q4_1 under llama.cpp against its float32 dequantisation under torch: the weights are the same
# numbers, but llama.cpp rounds every matmul's activations to 8 bits (blocks of 32) and keeps the
# KV cache in float16, so its logits carry rounding noise that torch's do not. How that noise
# falls depends on the kernels llama.cpp was compiled with: the native build here (AVX-512,
# VNNI) and a generic one (GGML_NATIVE=OFF: AVX2, scripts/test_generic_llamacpp.sh) differ from
# each other by as much as either differs from torch. The bounds below are therefore set on
# the noise's distribution over many rows and both builds, not on one build's worst position.
# Measured (4 chat prompts + human sentences, 70 teacher-forced positions, each build against
# torch, native / generic):
# - centered RMS of the logit difference over the 49,152 tokens, per position: median
#   0.125 / 0.131, max 0.311 / 0.273. A bound of 0.6 is twice the largest; a real fault (logits
#   one position off) gives 1.27 at its least and 3.0 typically, so it is still caught.
# - total variation at τ = 1, per position: median 0.021 / 0.020, max 0.077 / 0.079; bound 0.2.
# - entropy and surprisal per position have heavy tails (up to 0.39 and 0.83 nats at τ = 0.5:
#   a token near a cut moves a lot), so no per-position bound on them: their means over a text,
#   where the noise averages out, are bounded. The logit noise enters divided by τ, so the
#   bound is 0.1/τ nats; the measured |difference of the means| over a text was at most 0.102
#   at τ = 0.5, 0.043 at τ = 1 and 0.036 at τ = 1.5: a factor of 1.85 or more below it.
LOGIT_RMS_BOUND = 0.6
TOTAL_VARIATION_BOUND = 0.2
MEAN_BOUND_TIMES_TAU = 0.1


def _decode(context, batch, tokens, start, logits_last=True):
    for i, token in enumerate(tokens):
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, start + i, 1
        batch.seq_id[i][0] = 0
        batch.logits[i] = logits_last and i == len(tokens) - 1
    batch.n_tokens = len(tokens)
    assert llama.llama_decode(context, batch) == 0


def llama_greedy(source, prompt_ids, max_new_tokens):
    """llama.cpp's own greedy decoding (its sampler chain), in a context set up like ours."""
    page = LlamaCppSession.page
    n_ctx = -(-(len(prompt_ids) + LlamaCppSession.reserve) // page) * page
    context = llama.llama_init_from_model(
        source.model, context_params(llama, n_ctx, 1, max(len(prompt_ids), 1))
    )
    batch = llama.llama_batch_init(max(len(prompt_ids), 1), 0, 1)
    chain = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
    llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_greedy())
    try:
        _decode(context, batch, prompt_ids, 0)
        tokens = []
        for step in range(max_new_tokens):
            token = llama.llama_sampler_sample(chain, context, -1)
            if token in source.eos_token_ids:
                break
            tokens.append(token)
            _decode(context, batch, [token], len(prompt_ids) + step)
        return tokens
    finally:
        llama.llama_sampler_free(chain)
        llama.llama_batch_free(batch)
        llama.llama_free(context)


@pytest.mark.parametrize("prompts", [PROMPTS[:1], PROMPTS], ids=["one", "batch"])
def test_greedy_equals_llama_cpp_greedy_token_for_token(gguf, prompts):
    rows = [GenerationRow(p, SamplingParams(temperature=0)) for p in prompts]
    ours = generate(gguf, rows, max_new_tokens=32)
    theirs = [llama_greedy(gguf, c.prompt_ids, 32) for c in ours]
    assert [c.token_ids for c in ours] == theirs


def _steps(source, prompts, tokens):
    """First logits and the logits after each forced token, per row: ``[steps, B, V]``."""
    logits, session = source.start(prompts)
    out = [logits]
    for step in tokens:
        out.append(session.advance(np.asarray(step)))
    return np.stack(out)


def test_a_row_in_a_batch_has_its_logits_alone(gguf):
    prompts = [gguf.encode(p, chat=True) for p in PROMPTS]
    batch = [prompts[0], prompts[1], prompts[2], prompts[0]]  # a shared prompt, copied
    forced = [[int(t)] * len(batch) for t in gguf.encode(" the sea is calm and blue", False)]
    together = _steps(gguf, batch, forced)
    for row, prompt in enumerate(batch):
        alone = _steps(gguf, [prompt], [[step[row]] for step in forced])[:, 0]
        assert np.array_equal(together[:, row], alone)
    assert np.array_equal(together[:, 0], together[:, 3])  # one prefill, two rows


def test_a_row_in_a_batch_of_80_has_its_logits_alone(gguf):
    # Beyond 64 rows llama.cpp's flash attention would take another kernel (see UBATCH).
    prompts = [gguf.encode(p, chat=True) for p in PROMPTS]
    batch = [prompts[row % 3] for row in range(80)]
    forced = [[int(t)] * len(batch) for t in gguf.encode(" the sea", False)]
    together = _steps(gguf, batch, forced)
    for row in (0, 1, 79):
        alone = _steps(gguf, [batch[row]], [[step[row]] for step in forced])[:, 0]
        assert np.array_equal(together[:, row], alone)


def test_a_row_rewound_in_a_batch_leaves_the_other_rows_logits_alone(gguf):
    # Phrase bans rewind one row of a batch (LlamaCppSession.rewind). The others must go on
    # bit-identical to themselves alone, and the rewound row must equal itself alone on the
    # history it kept.
    prompts = [gguf.encode(p, chat=True) for p in PROMPTS[:3]]
    text = " the sea is calm and blue tonight, and the boats sleep"
    words = [int(t) for t in gguf.encode(text, False)]
    _, session = gguf.start(prompts)
    for token in words[:6]:
        session.advance(np.array([token] * 3))
    session.rewind(1, len(prompts[1]) + 2)  # row 1 drops its last four tokens
    after = session.advance(np.array([words[6], words[2], words[6]]))
    again = session.advance(np.array([words[7], words[3], words[7]]))
    for row in (0, 2):
        alone = _steps(gguf, [prompts[row]], [[t] for t in words[:8]])[:, 0]
        assert np.array_equal(after[row], alone[7]) and np.array_equal(again[row], alone[8])
    kept = _steps(gguf, [prompts[1]], [[t] for t in words[:4]])[:, 0]
    assert np.array_equal(after[1], kept[3]) and np.array_equal(again[1], kept[4])


def test_a_session_that_outgrows_its_context_keeps_its_logits(gguf, monkeypatch):
    prompts = [gguf.encode(p, chat=True) for p in PROMPTS[:2]]
    words = gguf.encode(" one two three four five six seven eight nine ten" * 12, False)
    forced = [[int(t)] * 2 for t in words[:120]]  # 2 × 120 cells beyond the prompts
    roomy = _steps(gguf, prompts, forced)
    growths = []
    grow = LlamaCppSession._grow
    monkeypatch.setattr(LlamaCppSession, "_grow", lambda self: growths.append(1) or grow(self))
    monkeypatch.setattr(LlamaCppSession, "reserve", 1)  # 256 cells (llama.cpp's least)
    grown = _steps(gguf, prompts, forced)
    assert growths
    assert np.array_equal(roomy, grown)


def test_the_gguf_path_imports_neither_torch_nor_transformers(gguf):
    script = (
        "import sys\n"
        "from sampler import SamplingParams\n"
        "from sampler.generation.loop import generate\n"
        "from sampler.generation.generation_row import GenerationRow\n"
        "from sampler.sources import load_source\n"
        "source = load_source('smollm2-135m-gguf')\n"
        "(c,) = generate(source, [GenerationRow('Hi', SamplingParams(temperature=0))], "
        "max_new_tokens=2)\n"
        "assert len(c.token_ids) == 2, c\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --- our `llama.cpp` order against llama.cpp's own samplers ---------------------------------

@pytest.fixture(scope="module")
def torch_source():
    pytest.importorskip("torch")
    return load_source("smollm2-135m", quiet=True)


def test_the_chat_prompt_has_the_same_tokens_on_both_backends(gguf, torch_source):
    for prompt in [*PROMPTS, "  spaces, ünïcödé and <|im_end|> in text  "]:
        for chat in (True, False):
            assert gguf.encode(prompt, chat) == torch_source.encode(prompt, chat)


def _forced_logits(source, context, targets):
    """Teacher-forced float64 logits ``[positions, V]``: the rows that predict ``targets``."""
    logits, session = source.start([list(context)])
    rows = [logits[0]]
    for token in targets[:-1]:
        rows.append(session.advance(np.array([token]))[0])
    return np.stack(rows).astype(np.float64)


def test_teacher_forced_analysis_agrees_between_backends(gguf, torch_source):
    import scipy.special

    from sampler.analysis.teacher_forced import analyze_tokens, forced_ids

    text = "The sea is calm tonight, and the stars are bright above the quiet harbour."
    temperatures = [0.5, 1.0, 1.5]
    context, targets = forced_ids(gguf, text, prompt=PROMPTS[1], chat=True)
    assert (context, targets) == forced_ids(torch_source, text, prompt=PROMPTS[1], chat=True)
    logits = {name: _forced_logits(source, context, targets)
              for name, source in (("gguf", gguf), ("torch", torch_source))}

    # The two models: equal up to llama.cpp's rounding noise (bounds: see the constants).
    difference = logits["gguf"] - logits["torch"]
    centered = difference - difference.mean(axis=1, keepdims=True)
    assert np.sqrt((centered**2).mean(axis=1)).max() <= LOGIT_RMS_BOUND
    laws = {name: scipy.special.softmax(row, axis=1) for name, row in logits.items()}
    assert (0.5 * np.abs(laws["gguf"] - laws["torch"]).sum(axis=1)).max() <= TOTAL_VARIATION_BOUND

    # Each backend's analysis is the closed form on its own logits (scipy, float64: both sides
    # round in float64 on values below 100, so 1e-9 is far above their rounding).
    analyses = {}
    for name, source in (("gguf", gguf), ("torch", torch_source)):
        result = analyze_tokens(source, context, targets, temperatures)
        for column, tau in enumerate(temperatures):
            log_p = scipy.special.log_softmax(logits[name] / tau, axis=1)
            np.testing.assert_allclose(result.entropy[:, column],
                                       -(np.exp(log_p) * log_p).sum(axis=1), atol=1e-9)
            np.testing.assert_allclose(result.surprisal[:, column],
                                       -log_p[np.arange(len(targets)), targets], atol=1e-9)
        analyses[name] = result
    ours, reference = analyses["gguf"], analyses["torch"]
    assert ours.labels == reference.labels
    bound = MEAN_BOUND_TIMES_TAU / np.asarray(temperatures)
    assert (np.abs(ours.mean_entropy() - reference.mean_entropy()) <= bound).all()
    assert (np.abs(ours.mean_surprisal() - reference.mean_surprisal()) <= bound).all()


# --- bad input: one `error:` line, exit 2 ----------------------------------------------------


def _generate(*args):
    from click.testing import CliRunner

    from sampler.cli import cli

    return CliRunner().invoke(
        cli, ["generate", "--prompt", "Hi", "--max-new-tokens", "2", "--no-log", *args]
    )


def _one_error_line(result, *fragments):
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_a_missing_gguf_file_is_one_error_line(tmp_path):
    _one_error_line(_generate("--model", str(tmp_path / "nowhere.gguf")), "does not exist")


def test_a_file_that_is_not_gguf_is_one_error_line(tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_text("this is not a model\n")
    _one_error_line(_generate("--model", str(fake)), "is not a GGUF file")


def test_a_truncated_gguf_file_is_one_error_line(gguf, tmp_path):
    whole = model_folder("smollm2-135m", cache_root()) / "model.gguf"
    cut = tmp_path / "cut.gguf"
    with whole.open("rb") as source:
        cut.write_bytes(source.read(whole.stat().st_size // 2))
    _one_error_line(_generate("--model", str(cut)), "llama.cpp cannot load")


def test_a_missing_llama_cpp_says_which_extra_installs_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` now fails
    fake = tmp_path / "any.gguf"
    fake.write_bytes(b"GGUF")
    _one_error_line(_generate("--model", str(fake)), "pip install -e '.[llamacpp]'")
    _one_error_line(_generate("--model", "smollm2-135m-gguf"), "llama-cpp-python")


def test_prompt_and_tokens_beyond_the_context_is_one_error_line(gguf):
    limit = gguf.context_limit
    _one_error_line(
        _generate("--model", "smollm2-135m-gguf", "--max-new-tokens", str(limit)), str(limit)
    )
