"""``divergence`` costs what ``analyze`` costs (one teacher-forced pass: a prefill and one step
per forced token, shared by every side on the same model), and shows its progress on stderr.

Cost is counted in model calls, not seconds: a count does not depend on the machine's load.
"""

import json

import pytest
from click.testing import CliRunner

from sampler.analysis.divergence_plan import compare_sides, plan_sides
from sampler.analysis.teacher_forced import analyze_text
from sampler.cli import cli
from sampler.sources.synthetic_spec import parse_synthetic

MARKOV = "synthetic:markov?vocab=50&sharpness=2&seed=1"
TEXT = "kalo mesu puzo hena refa nali tuju tone"  # 8 words: 1 context token + 7 forced


class Counted:
    """``source`` whose prefills (``start``) and steps (``advance``) are counted."""

    def __init__(self, source):
        self.source, self.starts, self.steps = source, 0, 0

    def __getattr__(self, name):
        return getattr(self.source, name)

    def start(self, prompts):
        self.starts += 1
        logits, session = self.source.start(prompts)
        advance = session.advance

        def counted_advance(tokens):
            self.steps += 1
            return advance(tokens)

        session.advance = counted_advance
        return logits, session


def calls(run) -> tuple[int, int]:
    counted = Counted(parse_synthetic(MARKOV))
    run(counted)
    return counted.starts, counted.steps


@pytest.mark.parametrize(
    ("order", "vs"), [("hf", ["temperature=0.2"]), ("all", []), ("hf", ["order=vllm"])]
)
def test_divergence_makes_the_model_calls_of_one_analyze(order, vs):
    sides = plan_sides(1.0, order, {"top_k": 5}, vs, lambda _m: None)
    analyzed = calls(lambda source: analyze_text(source, TEXT, [0.3, 0.7, 1, 1.5]))
    compared = calls(lambda source: compare_sides(source, sides, False, text=TEXT))
    # the oracle: one prefill of the first token, one step per later forced token
    assert analyzed == compared == (1, len(TEXT.split()) - 2)


def test_progress_hears_every_position_in_order():
    sides = plan_sides(1.0, "hf", {}, ["temperature=0.2"], lambda _m: None)
    heard = []
    compare_sides(parse_synthetic(MARKOV), sides, False, text=TEXT,
                  progress=lambda done, total: heard.append((done, total)))
    forced = len(TEXT.split()) - 1
    assert heard == [(done, forced) for done in range(1, forced + 1)]


def test_the_command_shows_its_progress_on_stderr_only():
    result = CliRunner().invoke(cli, ["divergence", "--model", MARKOV, "--text", TEXT,
                                      "--vs", "temperature=0.2", "--json"])
    assert result.exit_code == 0, result.output
    assert "positions" in result.stderr  # the bar's label
    assert json.loads(result.stdout)["pairs"][0]["positions"] == 7  # stdout: the JSON alone
