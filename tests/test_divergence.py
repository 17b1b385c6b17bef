"""`sampler divergence`: teacher-forced KL, TV and kept sets of two samplers, token by token.

Oracles: laws built by hand in the tests from the source's logits (softmax, top-k, min-p,
repetition penalty, XTC's mixture written out here), scipy's ``entropy(p, q)`` for KL and
entropy, and total variation by its closed form.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.special
import scipy.stats
from click.testing import CliRunner

from sampler import SamplingParams
from sampler.analysis.divergence_compare import (
    divergence_text,
    divergence_tokens,
    order_divergences,
)
from sampler.cli import cli
from sampler.errors import InvalidInputError
from sampler.sources.synthetic_spec import parse_synthetic
from tests.test_bad_input import one_error_line

MARKOV = "synthetic:markov?vocab=300&sharpness=2.0&seed=1"
FIXED = "synthetic:fixed?logits=2,1,0.5,-1,0.3"
CHAIN_ROW = "synthetic:fixed?logits=3,2.5,1,0.2"  # docs/engine.md's `sampler chain` example


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args))


def scaled_error(x, *taus: float) -> float:
    """δ: how far a side's x / τ can be from the float64 oracle's. The sources give float32
    logits (≤ u|x| off, u = 2^-24) and the division may round in float32 too (≤ u|x|/τ).

    A log-probability y - log Z then moves by ≤ 2δ and a probability by ≤ 2δ p, so TV moves
    by ≤ 2δ, KL(p ‖ q) by ≤ 2δ (max|log p/q| + 2) and an entropy by ≤ 2δ (max|log p| + 1).
    """
    return 2 * 2.0**-24 * float(np.abs(np.asarray(x, dtype=np.float64)).max()) / min(taus)


def kl_bound(delta: float, p: np.ndarray, q: np.ndarray) -> float:
    """The bound on KL(p ‖ q) that :func:`scaled_error` states, over p's support."""
    kept = p > 0
    return 2 * delta * (float(np.abs(np.log(p[kept] / q[kept])).max()) + 2)


def entropy_bound(delta: float, p: np.ndarray) -> float:
    return 2 * delta * (float(np.abs(np.log(p[p > 0])).max()) + 1)


def tv(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(p - q).sum())


def kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p ‖ q) by scipy, inf when p has mass where q has none (scipy says inf too)."""
    return float(scipy.stats.entropy(p, q))


def test_kl_tv_entropy_match_scipy_with_full_supports():
    source = parse_synthetic(FIXED)
    x = np.array([2, 1, 0.5, -1, 0.3])
    result = divergence_text(
        source, "A B C", SamplingParams(temperature=0.7), SamplingParams(temperature=1.3)
    )
    p, q = scipy.special.softmax(x / 0.7), scipy.special.softmax(x / 1.3)
    delta = scaled_error(x, 0.7, 1.3)
    assert len(result.labels) == 2  # the first token is context only
    for i in range(2):  # fixed logits: every position has the same laws
        assert result.kl_ab[i] == pytest.approx(kl(p, q), abs=kl_bound(delta, p, q))
        assert result.kl_ba[i] == pytest.approx(kl(q, p), abs=kl_bound(delta, q, p))
        assert result.tv[i] == pytest.approx(tv(p, q), abs=2 * delta)
        assert result.same_token[i] == pytest.approx(1 - tv(p, q), abs=2 * delta)
        assert result.entropy_a[i] == pytest.approx(
            scipy.stats.entropy(p), abs=entropy_bound(delta, p))
        assert result.entropy_b[i] == pytest.approx(
            scipy.stats.entropy(q), abs=entropy_bound(delta, q))
        assert (result.kept_a[i], result.kept_b[i], result.kept_differ[i]) == (5, 5, False)


def test_a_truncated_side_has_infinite_kl_one_way_and_it_is_kept_in_the_mean():
    source = parse_synthetic(FIXED)
    x = np.array([2, 1, 0.5, -1, 0.3])
    result = divergence_text(source, "A B C D", SamplingParams(top_k=2), SamplingParams())
    p = np.where(np.arange(5) < 2, np.exp(x), 0) / np.exp(x[:2]).sum()  # the two largest
    q = scipy.special.softmax(x)
    assert math.isinf(kl(q, p))  # the oracle agrees this direction is infinite
    delta = scaled_error(x, 1.0)
    assert result.kl_ab == pytest.approx([kl(p, q)] * 3, abs=kl_bound(delta, p, q))
    assert np.isinf(result.kl_ba).all()
    assert result.tv == pytest.approx([tv(p, q)] * 3, abs=2 * delta)
    means = result.means()
    assert math.isinf(means["kl_ba"]) and means["infinite_kl_ba"] == 3
    assert means["infinite_kl_ab"] == 0 and means["kept_differ_count"] == 3
    assert list(result.kept_a) == [2, 2, 2] and list(result.kept_b) == [5, 5, 5]


def test_identical_settings_give_zero_divergence():
    source = parse_synthetic(MARKOV)
    params = SamplingParams(temperature=0.8, top_p=0.9, repetition_penalty=1.3)
    result = divergence_text(source, "kalo mesu puzo hena kobe kalo", params, params)
    assert (result.kl_ab == 0).all() and (result.kl_ba == 0).all()
    assert (result.tv == 0).all() and (result.same_token == 1).all()
    assert not result.kept_differ.any() and (result.kept_a == result.kept_b).all()


def test_penalties_see_the_prompt_and_the_forced_tokens():
    source = parse_synthetic(MARKOV)
    prompt = source.encode("kalo mesu", chat=False)
    targets = source.encode("kalo puzo kalo mesu", chat=False)
    penalty = 1.8
    result = divergence_tokens(
        source, SamplingParams(), SamplingParams(repetition_penalty=penalty), prompt, targets
    )
    for i in range(len(targets)):
        history = prompt + targets[:i]
        logits, _ = source.start([history])  # the oracle reads each prefix afresh
        x = logits[0].astype(np.float64)
        seen = np.isin(np.arange(x.size), history)
        y = np.where(seen, np.where(x > 0, x / penalty, x * penalty), x)
        p, q = scipy.special.softmax(x), scipy.special.softmax(y)
        delta = scaled_error(x, 1 / penalty)  # the penalty scales a logit by up to 1.8
        assert result.tv[i] == pytest.approx(tv(p, q), abs=2 * delta)
        assert result.kl_ab[i] == pytest.approx(kl(p, q), abs=kl_bound(delta, p, q))


def test_xtc_is_compared_by_its_law_the_mixture_over_its_coin():
    source = parse_synthetic("synthetic:fixed?logits=3,1,0.2")
    plain = SamplingParams(order="llama.cpp")
    xtc = SamplingParams(order="llama.cpp", xtc_probability=0.5, xtc_threshold=0.1)
    result = divergence_text(source, "A B", plain, xtc)
    p = scipy.special.softmax([3, 1, 0.2])  # A and B reach 0.1: A, the likelier, goes
    fired = np.array([0, p[1], p[2]]) / (p[1] + p[2])
    q = 0.5 * fired + 0.5 * p
    delta = scaled_error([3, 1, 0.2], 1.0)  # the mixture of two such laws moves by ≤ 2δ too
    assert result.tv[0] == pytest.approx(tv(p, q), abs=2 * delta)
    assert result.kl_ab[0] == pytest.approx(kl(p, q), abs=kl_bound(delta, p, q))
    assert not result.kept_differ[0]  # the mixture keeps every token


def hand_chain_laws() -> tuple[np.ndarray, np.ndarray]:
    """docs/engine.md's chain example by hand: hf keeps A, B, C at τ = 2; llama.cpp keeps A, B."""
    x = np.array([3, 2.5, 1, 0.2])
    hf = np.r_[scipy.special.softmax(x[:3] / 2), 0]  # top-k 3 drops D; min-p keeps C (e^-1)
    assert math.exp((x[2] - x[0]) / 2) >= 0.2 > math.exp(x[2] - x[0])  # llama.cpp: τ = 1
    llama = np.r_[scipy.special.softmax(x[:2] / 2), 0, 0]
    return hf, llama


def test_order_all_on_readmes_chain_row():
    out = run_cli("divergence", "--model", CHAIN_ROW, "--text", "A B C", "-t", "2",
                  "--min-p", "0.2", "--top-k", "3", "--order", "all", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["tokens"] == ["B", "C"] and set(data["orders"]) == {"hf", "llama.cpp", "vllm",
                                                                  "webui"}
    assert "xtc" in data["orders"]["llama.cpp"]  # the new stage shows in the chains
    pairs = {(pair["a"], pair["b"]): pair for pair in data["pairs"]}
    assert len(pairs) == 6
    hf, llama = hand_chain_laws()
    delta = scaled_error([3, 2.5, 1, 0.2], 1.0)
    pair = pairs["hf", "llama.cpp"]
    assert pair["kept_differ"] == [True, True] and pair["kept_a"] == [3, 3]
    assert pair["kept_b"] == [2, 2] and pair["kl_ab"] == ["inf", "inf"]
    assert pair["tv"] == pytest.approx([tv(hf, llama)] * 2, abs=2 * delta)
    assert pair["tv"][0] == pytest.approx(hf[2], abs=2 * delta)  # the mass llama.cpp drops
    assert pair["kl_ba"] == pytest.approx([kl(llama, hf)] * 2, abs=kl_bound(delta, llama, hf))
    assert pair["mean"]["kl_ab"] == "inf" and pair["infinite_kl_ab"] == 2
    assert pair["kept_differ_count"] == 2
    assert pair["mean"]["same_token"] == pytest.approx(1 - tv(hf, llama), abs=2 * delta)
    assert pairs["hf", "vllm"]["tv"] == [0.0, 0.0]
    assert pairs["hf", "vllm"]["kept_differ"] == [False, False]
    table = run_cli("divergence", "--model", CHAIN_ROW, "--text", "A B C", "-t", "2",
                    "--min-p", "0.2", "--top-k", "3", "--order", "all")
    row = next(line for line in table.stdout.splitlines() if line.startswith("hf  "))
    assert row.split()[:5] == ["hf", "llama.cpp", f"{tv(hf, llama):.4f}",
                               f"{1 - tv(hf, llama):.4f}", "2/2"]


def test_order_all_leaves_out_the_presets_without_a_stage_that_is_set():
    out = run_cli("divergence", "--model", CHAIN_ROW, "--text", "A B C", "--xtc-probability",
                  "0.5", "--order", "all", "--json")
    assert out.exit_code == 0, out.output
    assert sorted(json.loads(out.stdout)["orders"]) == ["llama.cpp", "webui"]
    assert "note: hf left out: its chain has no xtc" in out.stderr
    one_error_line(run_cli("divergence", "--model", CHAIN_ROW, "--text", "A B C",
                           "--smoothing-factor", "1", "--order", "all"), "fewer than two")


def test_single_pair_json_parses_and_vs_sets_side_b():
    out = run_cli("divergence", "--model", CHAIN_ROW, "--text", "A B C", "--vs",
                  "temperature=inf", "--vs", "order=llama.cpp", "--top-k", "2", "--json")
    assert out.exit_code == 0, out.output
    pair = json.loads(out.stdout)["pairs"][0]
    p = np.r_[scipy.special.softmax([3, 2.5]), 0, 0]
    uniform = np.array([0.5, 0.5, 0, 0])  # τ = ∞ after llama.cpp's top-k: uniform over two
    assert pair["b"] == "order=llama.cpp temperature=inf top_k=2"
    delta = scaled_error([3, 2.5], 1.0)  # the uniform side is exact
    assert pair["tv"] == pytest.approx([tv(p, uniform)] * 2, abs=2 * delta)
    assert pair["kl_ab"] == pytest.approx([kl(p, uniform)] * 2, abs=kl_bound(delta, p, uniform))
    assert pair["same_token"] == pytest.approx([1 - tv(p, uniform)] * 2, abs=2 * delta)


def test_a_logged_row_is_forced_after_its_prompt(tmp_path):
    db = str(tmp_path / "log.db")
    swept = run_cli("sweep", "--model", MARKOV, "--prompt", "kalo mesu", "--temperatures", "1",
                    "--samples", "1", "--max-new-tokens", "4", "--db", db)
    assert swept.exit_code == 0, swept.output
    out = run_cli("divergence", "--model", MARKOV, "--run", "latest", "--row", "0", "--db", db,
                  "--vs", "temperature=0.5", "--json")
    assert out.exit_code == 0, out.output
    source = parse_synthetic(MARKOV)
    logits, _ = source.start([source.encode("kalo mesu", chat=False)])
    x = logits[0].astype(np.float64)
    p, q = scipy.special.softmax(x), scipy.special.softmax(x / 0.5)
    data = json.loads(out.stdout)
    assert len(data["tokens"]) == 4  # every generated token is scored, the first after the prompt
    assert data["pairs"][0]["tv"][0] == pytest.approx(tv(p, q), abs=2 * scaled_error(x, 0.5))
    one_error_line(run_cli("divergence", "--model", MARKOV, "--run", "latest", "--row", "5",
                           "--db", db, "--vs", "top_k=2"), "--row 5 is out of range")


def test_two_models_with_different_vocabularies_are_refused():
    small, large = parse_synthetic("synthetic:fixed?logits=3,1"), parse_synthetic(FIXED)
    with pytest.raises(InvalidInputError, match="vocabularies differ in size"):
        divergence_text(small, "A B", SamplingParams(), SamplingParams(), source_b=large)
    one_error_line(run_cli("divergence", "--model", MARKOV, "--text", "kalo mesu",
                           "--vs-model", "synthetic:markov?vocab=200"), "vocabularies differ")


def test_two_models_that_tokenize_the_text_differently_are_refused():
    one_error_line(run_cli("divergence", "--model", CHAIN_ROW, "--text", "A B C", "--vs-model",
                           "synthetic:fixed?logits=1,2,3,4&labels=A,C,B,D"),
                   "tokenizes differently")


def test_two_models_over_one_vocabulary_compare_their_own_logits():
    other = "synthetic:fixed?logits=1,2,3,4"
    out = run_cli("divergence", "--model", CHAIN_ROW, "--text", "A B", "--vs-model", other,
                  "--json")
    assert out.exit_code == 0, out.output
    p, q = scipy.special.softmax([3, 2.5, 1, 0.2]), scipy.special.softmax([1, 2, 3, 4])
    pair = json.loads(out.stdout)["pairs"][0]
    delta = scaled_error([3, 2.5, 1, 0.2, 1, 2, 3, 4], 1.0)  # both models' float32 logits
    assert pair["kl_ab"][0] == pytest.approx(kl(p, q), abs=kl_bound(delta, p, q))
    assert pair["kl_ba"][0] == pytest.approx(kl(q, p), abs=kl_bound(delta, q, p))


def test_mirostat_is_refused_in_one_line():
    source = parse_synthetic(FIXED)
    with pytest.raises(InvalidInputError, match="mirostat=2 cannot be teacher-forced"):
        divergence_text(source, "A B", SamplingParams(), SamplingParams(mirostat=2))
    one_error_line(run_cli("divergence", "--model", FIXED, "--text", "A B", "--vs",
                           "mirostat=1"), "mirostat=1 cannot be teacher-forced")
    one_error_line(run_cli("divergence", "--model", FIXED, "--text", "A B", "--mirostat", "2",
                           "--order", "all"), "cannot be teacher-forced")


@pytest.mark.parametrize(
    ("vs", "fragment"),
    [
        ("top_q=0.5", "'top_q' is not a SamplingParams field"),
        ("top_p=abc", "top_p='abc' is not a number"),
        ("top_p=1.5", "top_p=1.5 is out of range"),
        ("top_k=2.5", "top_k='2.5' is out of range"),
        ("temperature=-1", "temperature"),
        ("order=llamacpp", "order='llamacpp' is not a preset"),
        ("top_p", "is not KEY=VALUE"),
        ("logit_bias=x=1", "is not logit_bias=ID=BIAS"),
        ("top_n_sigma=1", "has no top_n_sigma stage"),
    ],
)
def test_a_bad_vs_is_one_error_line(vs, fragment):
    one_error_line(run_cli("divergence", "--model", FIXED, "--text", "A B", "--vs", vs), fragment)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--text", "A B"], "nothing to compare"),
        (["--text", "A B", "--order", "all", "--vs", "top_k=2"], "--order all"),
        (["--vs", "top_k=2"], "exactly one of --text"),
        (["--text", "A", "--vs", "top_k=2"], "give at least two"),
        (["--text", "A B", "--vs", "top_k=2", "--plot", "missing/d.png"], "does not exist"),
        (["--text", "A B", "--vs", "top_k=2", "--plot", "d.txt"], "unknown extension"),
    ],
)
def test_bad_command_lines_are_one_error_line(args, fragment):
    one_error_line(run_cli("divergence", "--model", FIXED, *args), fragment)


def test_the_plot_is_written_only_inside_the_named_folder(tmp_path):
    folder = tmp_path / "plots"
    folder.mkdir()
    out = run_cli("divergence", "--model", CHAIN_ROW, "--text", "A B C", "-t", "2", "--min-p",
                  "0.2", "--top-k", "3", "--order", "all", "--plot", str(folder / "d.png"))
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in folder.iterdir()) == ["d.png"]  # no temporary file left
    assert (folder / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots"]  # nothing in the cwd


def test_divergence_on_a_synthetic_source_never_imports_torch(tmp_path):
    code = (
        "import sys\n"
        "from sampler.cli import cli\n"
        "try:\n"
        "    cli.main(args=sys.argv[1:], prog_name='sampler')\n"
        "except SystemExit as end:\n"
        "    print(f'EXIT={end.code}', file=sys.stderr)\n"
        "print('HEAVY=' + ','.join(m for m in ('torch', 'transformers') if m in sys.modules),\n"
        "      file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, "divergence", "--model", MARKOV, "--text",
                           "kalo mesu puzo", "--order", "all", "--top-k", "5"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert "EXIT=0\nHEAVY=\n" in done.stderr, done.stderr[-300:]


def masked_law(x: np.ndarray, kept: np.ndarray, tau: float) -> np.ndarray:
    """softmax(x / τ) over the ``kept`` tokens, 0 elsewhere."""
    return np.where(kept, scipy.special.softmax(np.where(kept, x / tau, -np.inf)), 0)


def test_order_all_on_the_real_model_matches_laws_built_by_hand(gguf):
    params = SamplingParams(temperature=2.0, top_k=20, min_p=0.1)
    ids = gguf.encode("The quick brown fox", chat=False)
    hf_llama = order_divergences(gguf, params, ids[:1], ids[1:], ["hf", "llama.cpp"])[0]
    for i in range(len(ids) - 1):
        logits, _ = gguf.start([ids[: i + 1]])
        x = logits[0].astype(np.float64)
        top = x >= np.sort(x)[-20]
        hot = masked_law(x, top, 2.0)  # hf: τ first, then top-k, then min-p on the τ = 2 law
        hf = masked_law(x, top & (hot >= 0.1 * hot.max()), 2.0)
        cold = masked_law(x, top, 1.0)  # llama.cpp: top-k, min-p on the τ = 1 law, τ last
        llama = masked_law(x, top & (cold >= 0.1 * cold.max()), 2.0)
        # the oracle reads the same float32 logits: 2δ covers the engine's float32 division
        # by τ, and a float32 sum over the ≤ 20 kept tokens rounds by ≤ (20 + 2) u more
        bound = 2 * scaled_error(x, 1.0) + 22 * 2.0**-24
        assert hf_llama.tv[i] == pytest.approx(tv(hf, llama), abs=bound)
        assert hf_llama.kept_a[i] == (hf > 0).sum() and hf_llama.kept_b[i] == (llama > 0).sum()
        assert bool(hf_llama.kept_differ[i]) == bool(((hf > 0) != (llama > 0)).any())
