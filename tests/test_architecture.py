"""The package layout README describes: arrows between packages point one way, no import cycles.

The oracle is the source text itself, read with ``ast``: every ``import sampler.X`` /
``from sampler.X import`` of every module, at module level and inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "sampler"
TOP = "top"
# What each package may import (besides itself). README's architecture table says the same.
ALLOWED = {
    TOP: {TOP},
    "engine": {TOP},
    "interop": {TOP, "engine"},
    "sources": {TOP, "engine"},
    "generation": {TOP, "engine", "sources"},
    "runlog": {TOP, "engine"},
    "experiments": {TOP, "engine", "sources", "generation", "runlog"},
    "report": {TOP, "engine", "generation", "runlog"},
    "serve": {TOP, "engine", "sources", "generation", "runlog"},
    "cli": {
        TOP, "engine", "interop", "sources", "generation", "runlog", "experiments", "report",
        "serve",
    },
}


def _modules() -> dict[str, Path]:
    names = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


MODULES = _modules()


def _top_modules() -> set[str]:
    return {f"sampler.{p.stem}" for p in ROOT.glob("*.py")} | {"sampler"}


def _imports(path: Path, module_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sampler"):
            found.add(node.module)
            # "from sampler.x import y" may name a submodule y
            found |= {f"{node.module}.{a.name}" for a in node.names} & set(MODULES)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("sampler")}
    return {name for name in found if name in MODULES}


def _package_of(module: str) -> str:
    if module == "sampler" or module in _top_modules():
        return TOP
    return module.split(".")[1]


# __main__ is the console entry point: it imports the command line and nothing imports it.
@pytest.mark.parametrize("module", sorted(set(MODULES) - {"sampler", "sampler.__main__"}))
def test_imports_point_one_way(module):
    package = _package_of(module)
    wrong = {
        name
        for name in _imports(MODULES[module], module_level_only=False)
        if _package_of(name) not in ALLOWED[package] | {package}
    }
    assert not wrong, f"{module} ({package}) imports {sorted(wrong)}"


def test_no_module_level_import_cycle():
    graph = {m: _imports(p, module_level_only=True) - {m} for m, p in MODULES.items()}
    # a package's __init__ importing its own modules is how a package exports: not a cycle
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in graph[node]:
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep] if dep in path else [node, dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_every_subpackage_says_what_lives_there():
    for init in ROOT.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init} has no docstring"


def test_the_top_level_stays_small():
    modules = [p.name for p in ROOT.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(modules) <= 8, modules
