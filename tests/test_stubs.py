"""The type stubs of ``SamplingParams`` and ``RunConfig`` declare the stage table's settings.

Both classes are built at run time from the stage table, which IDEs and type checkers cannot
see; ``sampler/engine/params.pyi`` and ``sampler/experiments/config.pyi`` declare their fields.
The oracle is the stage table itself (``SETTINGS``), read apart from the classes: a stage added
to the table and not declared in the stubs fails here.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from sampler.engine.stages import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
PARAMS_STUB = ROOT / "sampler" / "engine" / "params.pyi"
CONFIG_STUB = ROOT / "sampler" / "experiments" / "config.pyi"
# What each class holds besides the stage settings (its own fields), as their modules say.
ROW_FIELDS = ["mode", "seed", "order", "min_tokens_to_keep"]
RUN_FIELDS = [
    "model", "dtype", "prompts", "temperatures", "samples", "max_new_tokens", "seed", "order",
    "mode", "raw", "stop", "ban_phrases", "batch_size", "stream",
]  # fmt: skip
# The table's kinds as a stub writes them (a dict or tuple says what it holds).
KIND_PREFIX = {int: "int", float: "float", dict: "dict[", tuple: "tuple["}


def _declared(stub: Path, name: str) -> dict[str, str]:
    """The annotated fields of class ``name`` in a stub, in order: name -> annotation text."""
    tree = ast.parse(stub.read_text(encoding="utf-8"))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name]
    return {
        n.target.id: ast.unparse(n.annotation)
        for n in cls.body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
    }


def test_sampling_params_stub_declares_every_stage_setting_then_the_rows_own():
    declared = _declared(PARAMS_STUB, "SamplingParams")
    assert list(declared) == [*SETTINGS, *ROW_FIELDS]


def test_run_config_stub_declares_every_flag_setting():
    declared = _declared(CONFIG_STUB, "RunConfig")
    flagged = [name for name, setting in SETTINGS.items() if setting.flag]
    assert list(declared) == [*RUN_FIELDS, *flagged]


@pytest.mark.parametrize(
    ("stub", "name"), [(PARAMS_STUB, "SamplingParams"), (CONFIG_STUB, "RunConfig")]
)
def test_a_declared_stage_setting_has_the_table_kind(stub, name):
    declared = _declared(stub, name)
    for setting in SETTINGS.values():
        if setting.name in declared:
            assert declared[setting.name].startswith(KIND_PREFIX[setting.kind]), setting.name


def test_the_stubs_are_what_the_script_writes_now():
    """A stub edited by hand, or a table changed without rerunning the script, differs here."""
    spec = importlib.util.spec_from_file_location(
        "write_stubs", ROOT / "scripts" / "write_stubs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path, text in module.stub_texts().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} is stale: run PYTHONPATH=$PWD python scripts/write_stubs.py"
        )
