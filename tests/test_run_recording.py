"""Every run records the same things, whether a sweep or a server session made it.

The oracle for a recorded version is the package's own ``__version__``; the oracle for "the
same things" is the other kind of run, on the same model in the same process.
"""

import pytest
from conftest import import_llama_cpp_or_skip
from test_bad_input import run_cli

from sampler.runlog.recording import package_versions
from sampler.runlog.store import RunStore
from sampler.serve.sessions import save_session
from sampler.sources.synthetic_spec import parse_synthetic

MARKOV = "synthetic:markov?vocab=300&sharpness=2.0&seed=1"


def recorded_versions(tmp_path, source, model: str) -> tuple[dict, dict]:
    """The versions a 1-row sweep and a 1-row serve session on ``source`` record."""
    db = tmp_path / "runs.db"
    result = run_cli("sweep", "--model", model, "--prompt", "Hi", "--temperatures", "0",
                     "--samples", "1", "--max-new-tokens", "2", "--db", str(db))
    assert result.exit_code == 0, result.output
    body = {"generations": [{"prompt": "Hi", "rows": [{"seed": 0}], "max_new_tokens": 2}]}
    with RunStore(db) as store:
        swept = store.get_run("latest")
        saved = store.get_run(save_session(source, store, body)["id"])
    assert (swept["kind"], saved["kind"]) == ("sweep", "serve")
    return swept["versions"], saved["versions"]


def test_a_sweep_and_a_session_record_the_same_versions(tmp_path):
    swept, saved = recorded_versions(tmp_path, parse_synthetic(MARKOV), MARKOV)
    assert swept == saved and {"python", "sampler", "numpy"} <= set(swept)


def test_on_the_default_model_both_record_llama_cpp_python(tmp_path, gguf):
    llama_cpp = import_llama_cpp_or_skip()
    swept, saved = recorded_versions(tmp_path, gguf, "smollm2-135m-gguf")
    assert swept == saved
    assert swept["llama-cpp-python"] == llama_cpp.__version__


def test_a_backend_is_recorded_once_it_is_loaded():
    llama_cpp = import_llama_cpp_or_skip()  # loaded now, as the default model loads it
    import numpy

    import sampler

    versions = package_versions()
    assert versions["llama-cpp-python"] == llama_cpp.__version__
    assert versions["numpy"] == numpy.__version__
    assert versions["sampler"] == sampler.__version__


@pytest.mark.parametrize("module", ["torch", "transformers", "llama_cpp"])
def test_a_backend_not_loaded_is_not_recorded(monkeypatch, module):
    import sys

    monkeypatch.delitem(sys.modules, module, raising=False)
    name = {"llama_cpp": "llama-cpp-python"}.get(module, module)
    assert name not in package_versions()
