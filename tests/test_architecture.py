"""The layout docs/architecture.md describes: arrows between packages point one way, no cycles.

The oracle is the source text itself, read with ``ast``: every ``import sampler.X`` /
``from sampler.X import`` of every module, at module level and inside functions. Imports under
``if TYPE_CHECKING:`` never run, so they are left out of the cycle check.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "sampler"
TOP = "top"
# What each package may import (besides itself). docs/architecture.md's table says the same.
ALLOWED = {
    TOP: {TOP},
    "engine": {TOP},
    "interop": {TOP, "engine"},
    "sources": {TOP, "engine"},
    "generation": {TOP, "engine", "sources"},
    "analysis": {TOP, "engine", "sources"},
    "plots": {TOP, "analysis"},
    "runlog": {TOP, "engine"},
    "experiments": {TOP, "engine", "sources", "generation", "runlog"},
    "report": {TOP, "engine", "generation", "runlog", "plots"},
    "serve": {TOP, "engine", "sources", "generation", "runlog"},
    "papers": {
        TOP, "engine", "sources", "generation", "analysis", "runlog", "experiments", "report",
        "plots",
    },
    "cli": {
        TOP, "engine", "interop", "sources", "generation", "analysis", "runlog", "experiments",
        "report", "plots", "serve", "papers",
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


def _is_type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): imports that only type checkers run."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.Module, module_level_only: bool, runtime_only: bool) -> list[ast.AST]:
    if module_level_only:
        return list(tree.body)
    nodes, pending = [], list(tree.body)
    while pending:
        node = pending.pop()
        nodes.append(node)
        if runtime_only and _is_type_checking(node):
            pending.extend(node.orelse)  # the else branch does run
            continue
        pending.extend(ast.iter_child_nodes(node))
    return nodes


def _imports(path: Path, module_level_only: bool, runtime_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in _import_nodes(tree, module_level_only, runtime_only):
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


def _import_graph(module_level_only: bool) -> dict[str, set[str]]:
    graph = {m: _imports(p, module_level_only, True) - {m} for m, p in MODULES.items()}
    # a package's __init__ importing its own modules is how a package exports: not a cycle
    return {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (depth-first search, white/grey/black), or ``None``."""
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep] if dep in path else [node, dep]
            if dep not in state and (cycle := visit(dep, [*path, dep])):
                return cycle
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module, [module])):
            return cycle
    return None


def test_no_module_level_import_cycle():
    cycle = _find_cycle(_import_graph(module_level_only=True))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycle_at_run_time():
    """A function-level import closes a cycle as surely as a module-level one, only later."""
    cycle = _find_cycle(_import_graph(module_level_only=False))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_sees_imports_inside_functions_and_skips_type_checking():
    # Two modules importing each other, one of them from inside a function, is a cycle; the
    # same import under ``if TYPE_CHECKING:`` never runs and is not.
    def graph_of(source_a: str) -> dict[str, set[str]]:
        deps = set()
        for node in _import_nodes(ast.parse(source_a), False, runtime_only=True):
            if isinstance(node, ast.ImportFrom) and node.module == "b":
                deps.add(node.module)
        return {"a": deps, "b": {"a"}}

    inside_function = "def f():\n    from b import g\n"
    under_type_checking = "if TYPE_CHECKING:\n    from b import g\n"
    assert _find_cycle(graph_of(inside_function)) == ["a", "b", "a"]
    assert _find_cycle(graph_of(under_type_checking)) is None


def test_every_subpackage_says_what_lives_there():
    for init in ROOT.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init} has no docstring"


def test_the_top_level_stays_small():
    modules = [p.name for p in ROOT.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(modules) <= 8, modules
