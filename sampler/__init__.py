"""sampler: an LLM-style token-sampling simulator.

The core needs only numpy; torch and transformers load only when a model is used.

>>> import sampler
>>> [round(p, 5) for p in sampler.softmax([3.0, 1.0, 0.2]).tolist()]
[0.83602, 0.11314, 0.05084]
"""

from sampler.engine.params import PRESETS, SamplingParams
from sampler.engine.sampling import Sampler, distribution
from sampler.engine.stats import StepStats
from sampler.entropy import entropy, softmax_entropy
from sampler.errors import InvalidInputError
from sampler.softmax import argmax, argmin, hardmax, log_softmax, softmax

__all__ = [
    "PRESETS",
    "InvalidInputError",
    "Sampler",
    "SamplingParams",
    "StepStats",
    "argmax",
    "argmin",
    "distribution",
    "entropy",
    "hardmax",
    "log_softmax",
    "softmax",
    "softmax_entropy",
]

__version__ = "0.1.0"
