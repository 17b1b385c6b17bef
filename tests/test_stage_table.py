"""The stage table is the one source of stage settings: everything derived from it agrees.

Each check runs over every row of the table, so a stage added there is covered by these tests
without a line here: its settings must be SamplingParams fields at their "off" value, be
validated with the table's rule, reach the filters as per-row arrays, appear as flags of every
sampling command, be sweep TOML keys, and show in a report's settings line when switched on.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from click.testing import CliRunner

from sampler import Sampler, SamplingParams, distribution
from sampler.cli import cli
from sampler.engine.params import PRESETS
from sampler.engine.rows import RowParams
from sampler.engine.settings import GROUPS, Setting, Slider, StageSpec
from sampler.engine.stages import SETTINGS, STAGES, table_json
from sampler.errors import InvalidInputError
from sampler.experiments.config import RunConfig
from sampler.report.pages import _filters

# One value that switches each setting on: the table's own example (the page's engine is
# checked stage by stage at the same values, tests/test_page_twins.py).
SWITCHED_ON = {name: setting.example for name, setting in SETTINGS.items()}
# A value outside each setting's range.
OUT_OF_RANGE = {
    "logit_bias": {1: 101.0},
    "repetition_penalty": 0.0,
    "frequency_penalty": 2.5,
    "presence_penalty": -3.0,
    "penalty_last_n": -1,
    "temperature": -0.5,
    "top_k": -2,
    "top_p": 0.0,
    "min_p": 1.5,
    "typical_p": 1.5,
    "epsilon": 1.0,
    "eta": 1.0,
    "top_n_sigma": math.inf,
    "smoothing_factor": 10.5,
    "smoothing_curve": 0.5,
    "top_a": 1.5,
    "tfs": -0.1,
    "dynatemp_range": -0.5,
    "dynatemp_exponent": math.inf,
    "mirostat": 3,
    "mirostat_tau": 0.0,
    "mirostat_eta": -0.1,
    "xtc_probability": 1.5,
    "xtc_threshold": 1.1,
    "dry_multiplier": -0.1,
    "dry_base": 0.5,
    "dry_allowed_length": -1,
    "dry_penalty_last_n": -2,
    "dry_sequence_breakers": ("", "x"),
    "top_h": 1.5,
    "adaptive_target": -1.5,
    "adaptive_decay": 0.995,
    "grammar": 5,
    "grammar_syntax": "xml",
    "grammar_mode": "first",
}
SAMPLING_COMMANDS = ("generate", "sweep", "compare", "chain")


def words_missing(spec: StageSpec) -> list[str]:
    """What a row lacks of the page's words: a stage's title, group (one of GROUPS) and
    summary (one sentence: a capital, one full stop at the end, no second sentence), and each
    setting's title in words (no snake_case field name) and, if it has one, a known group."""
    missing = []
    if not spec.title.strip():
        missing.append(f"{spec.name}: title")
    if spec.group not in GROUPS:
        missing.append(f"{spec.name}: group {spec.group!r}")
    if not re.fullmatch(r"[A-Z][^\n]*\.", spec.summary) or re.search(r"\. [A-Z]", spec.summary):
        missing.append(f"{spec.name}: summary {spec.summary!r}")
    for setting in spec.settings:
        if not setting.title.strip() or "_" in setting.title:
            missing.append(f"{setting.name}: title {setting.title!r}")
        if setting.group is not None and setting.group not in GROUPS:
            missing.append(f"{setting.name}: group {setting.group!r}")
    return missing


def test_every_row_has_the_page_s_words_and_table_json_exports_them():
    assert [problem for spec in STAGES for problem in words_missing(spec)] == []
    table = table_json()
    assert [g["name"] for g in table["groups"]] == list(GROUPS)
    assert all(g["title"] and g["summary"] for g in table["groups"])
    for spec, row in zip(STAGES, table["stages"], strict=True):
        words = (spec.title, spec.group, spec.summary)
        assert (row["title"], row["group"], row["summary"]) == words
    for row in table["settings"]:
        setting, stage = SETTINGS[row["name"]], next(s for s in STAGES if s.name == row["stage"])
        assert row["title"] == setting.title
        assert row["group"] == (setting.group or stage.group)  # a setting may sit elsewhere


def test_a_row_without_the_page_s_words_is_caught():
    bare = StageSpec(
        "new_stage",
        lambda candidates, rows: candidates,
        (Setting("new_strength", float, 0.0, "0..1", "New.", slider=Slider(0, 1, 0.01)),),
        "none",
    )
    assert words_missing(bare) == [
        "new_stage: title",
        "new_stage: group ''",
        "new_stage: summary ''",
        "new_strength: title ''",
    ]
    two_sentences = StageSpec(
        "new_stage", bare.function, (), "none", title="New", group="advanced", summary="A. B."
    )
    assert words_missing(two_sentences) == ["new_stage: summary 'A. B.'"]


def test_the_test_knows_every_setting():
    # a new stage's settings need an out-of-range value above (and an example in the table)
    assert set(OUT_OF_RANGE) == set(SETTINGS)
    assert all(value is not None for value in SWITCHED_ON.values())


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_setting_is_a_params_field_at_its_off_value(name):
    setting = SETTINGS[name]
    default = SamplingParams()
    assert getattr(default, name) == setting.off
    assert name in SamplingParams.__dataclass_fields__
    with pytest.raises(InvalidInputError, match=rf"^{name}[=\[ ].*(out of range|must be)"):
        SamplingParams(**{name: OUT_OF_RANGE[name]}, order=[s.name for s in STAGES])


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_switching_a_setting_on_activates_its_stage_and_reaches_the_rows(name):
    stage = next(spec for spec in STAGES if name in {s.name for s in spec.settings})
    value = SWITCHED_ON[name]
    params = SamplingParams(**{name: value}, order=[s.name for s in STAGES])
    setting = SETTINGS[name]
    if setting.activates:
        assert stage.name in params.active_stages
    else:
        assert stage.required or stage.name not in params.active_stages
    rows = RowParams.from_params([SamplingParams(), params])
    if setting.kind is dict:
        assert rows[name] == ({}, value)
    elif setting.kind in (tuple, str):
        assert rows[name] == (setting.off, value)
    else:
        assert rows[name].tolist() == [setting.off, value]
        assert rows.on(name).tolist() == [False, True]


def test_off_values_switch_nothing_on():
    assert SamplingParams(top_k=-1).active_stages == ("temperature",)
    assert SamplingParams(penalty_last_n=5).active_stages == ("temperature",)
    rows = RowParams.from_params([SamplingParams(top_k=-1), SamplingParams(top_k=3)])
    assert rows.on("top_k").tolist() == [False, True]


@pytest.mark.parametrize("command", SAMPLING_COMMANDS)
def test_every_flag_setting_is_an_option_of_every_sampling_command(command):
    result = CliRunner().invoke(cli, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name, setting in SETTINGS.items():
        if setting.flag:  # the temperature is every command's own (-t, --temperatures)
            assert "--" + name.replace("_", "-") in result.output, (command, name)
    assert "--mode" in result.output


@pytest.mark.parametrize("name", [n for n, s in SETTINGS.items() if s.flag])
def test_every_flag_setting_is_a_sweep_key_and_round_trips(name):
    value = SWITCHED_ON[name]
    toml_value = {str(k): v for k, v in value.items()} if isinstance(value, dict) else value
    # a preset that runs the setting's stage (webui holds every stage but top-H and adaptive-p;
    # mirostat replaces the chain of any)
    stage = next(spec.name for spec in STAGES if name in {s.name for s in spec.settings})
    order = next(
        (p for p in ("webui", "hf", "llama.cpp") if stage in PRESETS[p]), "webui"
    )
    # a chosen grammar_mode needs a grammar in a config (one line otherwise, as on the command
    # line): the grammar's example beside it
    beside = {"grammar": SWITCHED_ON["grammar"]} if name == "grammar_mode" else {}
    config = RunConfig.from_dict(
        {name: toml_value, "order": order, **beside}, origin="test.toml"
    )
    assert getattr(config, name) == value
    assert getattr(config.rows()[0].params, name) == value
    again = RunConfig.from_dict(config.to_dict(), origin="stored run")
    assert again == config
    assert f"{name}=" in _filters(config.to_dict())


def test_report_settings_line_lists_only_what_is_on():
    assert _filters(RunConfig().to_dict()) == "none"
    config = RunConfig(top_k=5, min_p=0.05).to_dict()
    assert _filters(config) == "top_k=5, min_p=0.05"


def test_presets_name_only_table_stages_and_contain_the_required_ones():
    names = {spec.name for spec in STAGES}
    for order in PRESETS.values():
        assert set(order) <= names
        assert all(spec.name in order for spec in STAGES if spec.required)


def test_sampler_accepts_a_generator_of_params():
    logits = np.array([[3.0, 1.0, 0.2]] * 3)
    params = (SamplingParams(seed=i) for i in range(3))
    tokens, stats = Sampler(params).step(logits)
    expected, _ = Sampler([SamplingParams(seed=i) for i in range(3)]).step(logits)
    assert tokens.tolist() == expected.tolist() and stats is not None


@pytest.mark.parametrize(
    ("logits", "temperature", "expected"),
    [
        # x / τ overflows float32 here; the shifted division does not
        (np.float32([1e36, 1e35, 0.0]), 1e-3, [1.0, 0.0, 0.0]),
        # τ = 1e-310 is subnormal in float64 and 0 in float32: both are the τ → 0 limit
        (np.float64([1.0, 0.5]), 1e-310, [1.0, 0.0]),
        # sampling at a τ that is 0 in float32 splits tied maxima, as the τ → 0 limit does
        (np.float32([1.0, 0.5, 1.0]), 1e-310, [0.5, 0.0, 0.5]),
    ],
)
def test_tiny_temperatures_give_the_limit_not_nan(logits, temperature, expected):
    params = SamplingParams(temperature=temperature, seed=0)
    probs = distribution(logits, params)
    np.testing.assert_allclose(probs, expected)
    tokens, stats = Sampler(params).step(logits[None, :])
    assert probs[tokens[0]] > 0 and np.isfinite(stats.entropy_final).all()


def test_hardmax_mode_at_a_tiny_temperature_splits_ties():
    probs = distribution(np.float32([1.0, 0.5, 1.0]), SamplingParams(mode="hardmax"))
    np.testing.assert_allclose(probs, [0.5, 0.0, 0.5])


def test_infinite_temperature_is_uniform_over_the_kept_tokens():
    logits = np.array([4.0, 1.0, -2.0, -np.inf, 0.5])
    probs = distribution(logits, SamplingParams(temperature=math.inf))
    np.testing.assert_allclose(probs, [0.25, 0.25, 0.25, 0.0, 0.25])
    # top-k before temperature (llama.cpp's order puts temperature last) keeps 2, then uniform
    probs = distribution(logits, SamplingParams(temperature=math.inf, top_k=2, order="llama.cpp"))
    np.testing.assert_allclose(probs, [0.5, 0.5, 0.0, 0.0, 0.0])
    _, stats = Sampler(SamplingParams(temperature=math.inf, seed=1)).step(logits[None, :])
    # uniform over 4: float rounding of log 4 only; approx's default 1e-6 absorbs it
    assert stats.entropy_temp[0] == pytest.approx(math.log(4))
    assert stats.entropy_final[0] == pytest.approx(math.log(4))


@pytest.mark.parametrize("temperature", [1.0, 0.1, 0.01, 1e-3])
def test_kept_tokens_are_the_tokens_with_nonzero_float64_probability(temperature):
    # the oracle: log q in float64 by scipy's logsumexp, q > 0 where log q >= log(5e-324)
    from scipy.special import logsumexp

    logits = np.random.default_rng(5).normal(0, 3, (2, 49_152))
    logits[1, :7] = 40.0  # seven tied maxima far above the rest
    scaled = logits / temperature
    log_q = scaled - logsumexp(scaled, axis=1, keepdims=True)
    expected = (log_q >= math.log(np.nextafter(0.0, 1.0))).sum(axis=1)
    counts = {}
    for dtype in (np.float32, np.float64):
        _, stats = Sampler(SamplingParams(temperature=temperature, seed=0)).step(
            logits.astype(dtype)
        )
        counts[dtype] = stats.kept_tokens.tolist()
    assert counts[np.float32] == counts[np.float64] == expected.tolist()
    if temperature <= 0.01:
        assert expected[1] == 7  # the tail underflows even in float64: only the ties remain


def test_kept_mass_weighs_the_same_tokens_as_kept_tokens():
    logits = np.array([[5.0, 4.0, -3000.0, 0.0]])
    _, stats = Sampler(SamplingParams(temperature=0.25, seed=0)).step(logits)
    # -3000 / 0.25 is 12,000 nats below the top: probability 0 in float64, not kept
    base = np.exp(logits[0] - logits[0].max())
    assert stats.kept_tokens[0] == 3
    assert stats.kept_mass[0] == pytest.approx(base[[0, 1, 3]].sum() / base.sum(), rel=1e-12)


def test_a_spread_beyond_float64_gives_the_limit_without_warnings():
    # pytest turns RuntimeWarnings into errors here (pyproject filterwarnings)
    probs = distribution(np.array([1e308, -1e308]), SamplingParams(temperature=2.0))
    np.testing.assert_array_equal(probs, [1.0, 0.0])
