"""Logit sources: a real Hugging Face causal LM, a GGUF model run by llama.cpp, or synthetic
vocabularies (numpy only).

:func:`load_source` takes ``synthetic:KIND?key=value&...``, a model alias (see
``sampler models``), a local ``.gguf`` file, a local Hugging Face folder, or a hub id. Only the
torch paths import torch and transformers; the llama.cpp ones (``smollm2-135m-gguf``, a
``.gguf`` file) import llama-cpp-python instead.
"""

from __future__ import annotations

from collections.abc import Callable

from sampler.errors import InvalidInputError
from sampler.sources.base import LogitSource
from sampler.sources.model_cache import DEFAULT_MODEL

__all__ = ["DEFAULT_MODEL", "DTYPES", "LogitSource", "load_source"]

# The torch backend's weight dtypes: float32 (exact parity with transformers' generate),
# bfloat16, or auto (bfloat16 where the CPU has native bf16 instructions, else float32).
DTYPES = ("float32", "bfloat16", "auto")


def load_source(
    spec: str = DEFAULT_MODEL,
    cache_dir: str | None = None,
    progress: Callable[[str], None] = lambda message: None,
    quiet: bool = False,
    dtype: str = "float32",
) -> LogitSource:
    """The logit source named by ``spec`` (see the module docstring).

    ``progress`` receives one-line messages (download, conversion); ``quiet`` silences
    transformers' own progress bars and warnings (the command line sets it). ``dtype`` (one
    of :data:`DTYPES`) is the torch backend's weight type; other sources take only float32.
    """
    if dtype not in DTYPES:
        raise InvalidInputError(f"dtype {dtype!r} is unknown: use one of {', '.join(DTYPES)}")
    if spec.startswith("synthetic:"):
        from sampler.sources.synthetic_spec import parse_synthetic

        _float32_only(spec, dtype, "synthetic sources compute float32/float64 logits")
        return parse_synthetic(spec)
    from sampler.sources.model_cache import ALIASES

    alias = ALIASES.get(spec)
    if (alias is not None and alias.backend == "llama.cpp") or (
        alias is None and spec.lower().endswith(".gguf")
    ):
        from sampler.sources.llamacpp_model import load_gguf_source

        _float32_only(spec, dtype, "llama.cpp runs the GGUF file's own weight types")
        return load_gguf_source(spec, cache_dir=cache_dir, progress=progress)
    from sampler.sources.cpu import tune_math_libraries

    tune_math_libraries()  # must run before torch is first imported
    from sampler.sources.torch_model import load_hf_source, quiet_transformers

    if quiet:
        quiet_transformers()
    return load_hf_source(spec, cache_dir=cache_dir, progress=progress, dtype=dtype)


def _float32_only(spec: str, dtype: str, why: str) -> None:
    if dtype != "float32":
        raise InvalidInputError(
            f"dtype {dtype!r} is for torch models; {spec!r} takes only float32 ({why})"
        )
