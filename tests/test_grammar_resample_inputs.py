"""llama.cpp's grammar resampling at the edges: the page's engine against the library (in
Chromium), and bad input (a grammar_mode without a grammar, resampling beside mirostat, no
matcher): one line, exit 2, nothing recorded. The law itself: tests/test_grammar_resample.py.
"""

import numpy as np
import pytest
from test_bad_input import one_error_line, run_cli
from test_grammar_resample import GRAMMAR, _row

from sampler import Sampler, SamplingParams, distribution
from sampler.engine.state import matcher_array
from sampler.errors import InvalidInputError

SYNTHETIC = "synthetic:markov?vocab=50&seed=1"


# --- the page's twin -------------------------------------------------------------------------

PAGE_CASES = [
    {"grammar": GRAMMAR, "order": "llama.cpp", "top_k": 3},
    {"grammar": GRAMMAR, "order": "llama.cpp", "top_p": 0.5, "temperature": 0.7},
    {"grammar": GRAMMAR, "order": "llama.cpp", "min_p": 0.3, "temperature": 1.4},
    {"grammar": GRAMMAR, "order": "llama.cpp", "top_k": 4, "xtc_probability": 0.5,
     "xtc_threshold": 0.1},
    {"grammar": GRAMMAR, "order": "llama.cpp", "top_k": 3, "temperature": 0},
    {"grammar": GRAMMAR, "order": "llama.cpp", "top_k": 3, "mode": "hardmax"},
    {"grammar": GRAMMAR, "order": "vllm", "top_k": 3, "grammar_mode": "resample"},
    {"grammar": GRAMMAR, "order": "llama.cpp", "top_k": 3, "grammar_mode": "mask"},
]


def test_the_page_engine_gives_the_resampling_law_and_its_statistics(browser):
    from test_page_engine import check_against_library, in_page, open_engine
    from test_page_twins import GRAMMAR_MASK, FixedMask, _row

    from sampler.serve.page import engine_config

    row, history = _row()
    page = open_engine(browser, engine_config())
    try:
        answers = in_page(page, row, PAGE_CASES, {"history": history, "grammar": GRAMMAR_MASK})
    finally:
        page.close()
    check_against_library(
        row, history, PAGE_CASES, answers,
        state_of=lambda case: {"grammar_matcher": matcher_array([FixedMask()])},
    )
    # the cases are not void: resampling moves the law away from masking first there
    state = {"grammar_matcher": matcher_array([FixedMask()])}
    first = SamplingParams(**PAGE_CASES[0])
    masked = SamplingParams(**{**PAGE_CASES[0], "grammar_mode": "mask"})
    moved = np.abs(distribution(row, first, state=state) - distribution(row, masked, state=state))
    assert moved.max() > 0.05


# --- bad input --------------------------------------------------------------------------------


def test_resampling_without_a_matcher_is_the_grammar_s_one_line_error():
    params = SamplingParams(grammar=GRAMMAR, order="llama.cpp", seed=0)
    with pytest.raises(InvalidInputError, match="needs the model's vocabulary"):
        Sampler([params]).step(_row()[None])
    with pytest.raises(InvalidInputError, match="needs the model's vocabulary"):
        distribution(_row(), params)


def test_mirostat_beside_resampling_is_one_line():
    with pytest.raises(InvalidInputError, match=r"mirostat=2 is on.*grammar_mode='mask'"):
        SamplingParams(grammar=GRAMMAR, mirostat=2, order="llama.cpp")
    SamplingParams(grammar=GRAMMAR, mirostat=2, order="llama.cpp", grammar_mode="mask")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["generate", "--prompt", "kalo", "--grammar-mode", "resample"],
         ["grammar_mode='resample'", "needs a grammar"]),
        (["compare", "--prompt", "kalo", "--grammar-mode", "mask"],
         ["grammar_mode='mask'", "needs a grammar"]),
        (["chain", "--grammar-mode", "resample", "1", "2"], ["needs a grammar"]),
        (["generate", "--prompt", "kalo", "--grammar-mode", "first"],
         ["'first' is not one of"]),
        (["generate", "--prompt", "kalo", "--regex", "a+", "--order", "llama.cpp",
          "--mirostat", "2"], ["mirostat=2 is on", "grammar_mode='mask'"]),
    ],
)
def test_a_grammar_mode_without_a_grammar_or_beside_mirostat_is_one_line(tmp_path, args,
                                                                          fragments):
    db = tmp_path / "log.db"
    extra = [] if args[0] == "chain" else ["--model", SYNTHETIC, "--db", str(db)]
    one_error_line(run_cli(*args, *extra), *fragments)
    assert not db.exists()


def test_a_grammar_mode_without_a_grammar_in_a_config_is_one_line(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('prompts = ["kalo"]\ngrammar_mode = "resample"\n', encoding="utf-8")
    db = tmp_path / "log.db"
    result = run_cli("sweep", "--config", str(config), "--model", SYNTHETIC, "--db", str(db))
    one_error_line(result, "run.toml", "needs a grammar")
    assert not db.exists()
