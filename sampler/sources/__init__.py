"""Logit sources: a real Hugging Face causal LM, a GGUF model run by llama.cpp, or synthetic
vocabularies (numpy only).

:func:`load_source` takes ``synthetic:KIND?key=value&...``, a model alias (see
``sampler models``), a local ``.gguf`` file, a local Hugging Face folder, or a hub id. Only the
torch paths import torch and transformers; the llama.cpp ones (``smollm2-135m-gguf``, a
``.gguf`` file) import llama-cpp-python instead.
"""

from __future__ import annotations

from collections.abc import Callable

from sampler.sources.base import LogitSource

__all__ = ["DEFAULT_MODEL", "LogitSource", "load_source"]

DEFAULT_MODEL = "smollm2-135m"


def load_source(
    spec: str = DEFAULT_MODEL,
    cache_dir: str | None = None,
    progress: Callable[[str], None] = lambda message: None,
    quiet: bool = False,
) -> LogitSource:
    """The logit source named by ``spec`` (see the module docstring).

    ``progress`` receives one-line messages (download, conversion); ``quiet`` silences
    transformers' own progress bars and warnings (the command line sets it).
    """
    if spec.startswith("synthetic:"):
        from sampler.sources.synthetic_spec import parse_synthetic

        return parse_synthetic(spec)
    from sampler.sources.model_cache import ALIASES

    alias = ALIASES.get(spec)
    if (alias is not None and alias.backend == "llama.cpp") or (
        alias is None and spec.lower().endswith(".gguf")
    ):
        from sampler.sources.llamacpp_model import load_gguf_source

        return load_gguf_source(spec, cache_dir=cache_dir, progress=progress)
    from sampler.sources.cpu import tune_math_libraries

    tune_math_libraries()  # must run before torch is first imported
    from sampler.sources.torch_model import load_hf_source, quiet_transformers

    if quiet:
        quiet_transformers()
    return load_hf_source(spec, cache_dir=cache_dir, progress=progress)
