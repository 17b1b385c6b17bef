"""Values a JSON body can carry that the settings took for numbers or lists and then failed on
(issue 18): each is one ``InvalidInputError`` naming the setting, whoever passes it (the
server, the command line's TOML, a Python caller)."""

import pytest

from sampler import SamplingParams
from sampler.errors import InvalidInputError

HUGE = 10**400  # an integer beyond float range: float() of it raises OverflowError


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"temperature": HUGE}, "is beyond float64's range (about 1.8e308): temperature >= 0"),
        ({"temperature": -HUGE}, "temperature=-1000"),
        ({"top_p": HUGE}, "top_p=1000"),
        ({"min_p": -HUGE}, "is beyond float64's range (about 1.8e308)"),
        ({"logit_bias": {3: HUGE}}, "logit_bias[3]=1000"),
        ({"logit_bias": {2**64: 1.0}}, "logit_bias token 18446744073709551616 must be an integer "
                                       "id >= 0"),
        ({"order": 5}, "order=5 must be a preset (hf, llama.cpp, vllm, webui) or a list of stage"),
        ({"order": None}, "order=None must be a preset"),
        ({"order": b"hf"}, "order=b'hf' must be a preset"),
        ({"order": ["temperature", ["top_k"]]}, "stage ['top_k'] is unknown"),
        ({"temperature": 10**5000}, "temperature=<an integer of about 5000 digits> is beyond"),
    ],
)
def test_values_beyond_what_a_setting_holds_are_one_error(settings, fragment):
    with pytest.raises(InvalidInputError) as caught:
        SamplingParams(**settings)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_the_largest_floats_and_int64_ids_are_still_taken():
    params = SamplingParams(temperature=10**308, logit_bias={2**63 - 1: 1.0})
    assert params.temperature == 1e308 and list(params.logit_bias) == [2**63 - 1]
