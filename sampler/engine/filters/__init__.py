"""One pure function per stage, ``(Candidates, RowParams) -> Candidates``, by stage name."""

from collections.abc import Callable

from sampler.engine.candidates import Candidates
from sampler.engine.filters.information import epsilon, eta, typical_p
from sampler.engine.filters.shaping import logit_bias, penalties, temperature
from sampler.engine.filters.truncation import min_p, top_k, top_n_sigma, top_p
from sampler.engine.rows import RowParams

__all__ = ["STAGE_FUNCTIONS", "Stage"]

Stage = Callable[[Candidates, RowParams], Candidates]

STAGE_FUNCTIONS: dict[str, Stage] = {
    "logit_bias": logit_bias,
    "penalties": penalties,
    "temperature": temperature,
    "top_k": top_k,
    "top_p": top_p,
    "min_p": min_p,
    "typical_p": typical_p,
    "epsilon": epsilon,
    "eta": eta,
    "top_n_sigma": top_n_sigma,
}
