"""What a generation row is and what it yields: the row, its random stream, its completion.

A row's random stream is keyed by ``(seed, prompt, sample)``: sample ``s`` of a prompt at
τ = 0.7 and at τ = 1.0 use the same uniform numbers, so what differs between them is the
temperature alone (common random numbers), while different prompts never share a stream. The
key does not depend on the batch, on the row's place in it, or on Python's hash randomisation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sampler.engine.params import SamplingParams

__all__ = [
    "STREAM_KEYS",
    "Completion",
    "GenerationRow",
    "prompt_key",
    "summary_line",
]


@dataclass(frozen=True)
class GenerationRow:
    """One completion to produce: a prompt, its decoding settings, and a sample index.

    ``stream`` is how the row's random stream is keyed (mixed with ``params.seed``):
    ``"prompt"``, by the prompt and the sample index (:func:`prompt_key`), or ``"sample"``, by
    the sample index alone, which runs logged by sampler 0.1.0 used, so that resuming one
    draws the tokens its first rows were drawn with.
    """

    prompt: str
    params: SamplingParams
    sample: int = 0
    stream: str = "prompt"

    def stream_key(self) -> tuple[int, ...]:
        """The integers mixed with the seed into this row's stream."""
        if self.stream == "sample":
            return (self.sample,)
        return (*prompt_key(self.prompt), self.sample)


STREAM_KEYS = ("prompt", "sample")


def prompt_key(prompt: str) -> tuple[int, int]:
    """Two 32-bit words of the prompt's SHA-256: stable across processes, machines, batches.

    >>> prompt_key("kalo mesu") == prompt_key("kalo mesu") != prompt_key("puzo hena")
    True
    """
    digest = hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:8], "little")


@dataclass
class Completion:
    """A finished row: its tokens, text, why it stopped, and the statistics of every step."""

    row: GenerationRow
    prompt_ids: list[int]
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str = "length"  # "eos", "stop" or "length"
    steps: list[dict[str, float]] = field(default_factory=list)
    # per-token log-probabilities, only when asked for (sampler.generation.logprobs)
    logprobs: dict | None = None
    # each rewind a banned phrase caused, only when phrases are banned
    # (sampler.generation.phrase_bans)
    rewinds: list[dict] | None = None

    def to_dict(self) -> dict:
        """A JSON-ready dict (params as their fields)."""
        params = {
            name: getattr(self.row.params, name) for name in self.row.params.__dataclass_fields__
        }
        params["order"] = list(params["order"])
        params["logit_bias"] = {str(k): v for k, v in params["logit_bias"].items()}
        data = {
            "prompt": self.row.prompt,
            "sample": self.row.sample,
            "temperature": self.row.params.temperature,
            "mode": self.row.params.mode,
            "params": params,
            "text": self.text,
            "token_ids": self.token_ids,
            "prompt_tokens": len(self.prompt_ids),
            "finish_reason": self.finish_reason,
            "steps": self.steps,
        }
        if self.logprobs is not None:
            data["logprobs"] = self.logprobs
        if self.rewinds is not None:
            data["rewinds"] = self.rewinds
        return data


def summary_line(completion: Completion, seed: int | None) -> str:
    """One line about a finished row: τ, sample, length, why it stopped, mean entropy, seed."""
    steps = completion.steps
    entropy = sum(s["entropy_final"] for s in steps) / max(len(steps), 1)
    count = len(completion.rewinds or ())
    rewinds = "" if completion.rewinds is None else f"{count} rewind{'s' * (count != 1)} · "
    return (
        f"τ={completion.row.params.temperature:g} · sample {completion.row.sample} · "
        f"{len(completion.token_ids)} tokens · {completion.finish_reason} · {rewinds}"
        f"mean entropy {entropy:.3f} nats · seed {seed}"
    )
