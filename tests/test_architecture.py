"""The layout is the architecture: the import graph has no cycle (function-level imports
counted), each layer imports only the layers below it, no step imports another step, modules
and functions stay small unless they say why, and ARCHITECTURE.md names only what exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import REPO

LIB = REPO / "lib"
# the layers of runbook/, each allowed to import the ones listed (and itself)
LAYERS = {
    "core": {"core"},
    "columns": {"core", "columns"},
    "engine": {"core", "columns", "engine"},
    "steps": {"core", "columns", "engine"},  # a step never imports another step
    "record": {"core", "record"},
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# modules that are long because they are declarative tables, not logic
DECLARATIVE = {
    "coldchain/migrations/versions/0001_initial.py": "the application's Alembic migration",
}
REASON = "Long because"  # how a long function's docstring states its reason


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(LIB.rglob("*.py")):
        name = ".".join(path.relative_to(LIB).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules a module imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                whole = f"{node.module}.{alias.name}"
                found.add(whole if whole in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in modules}


def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, as the modules along it (depth-first search)."""
    found, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(trail[trail.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_there_is_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_the_cycle_check_sees_a_cycle_hidden_in_a_function() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c", "a"]]


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "runbook" and len(parts) > 2 else None


def test_each_layer_imports_only_the_layers_below_it() -> None:
    wrong = []
    for module, imported in graph().items():
        layer = _layer(module)
        for other in imported if layer else ():
            if _layer(other) is not None and _layer(other) not in LAYERS[layer]:
                wrong.append(f"{module} imports {other}")
    assert wrong == []


def test_the_layer_check_refuses_a_step_importing_a_step() -> None:
    assert _layer("runbook.steps.verify") not in LAYERS[_layer("runbook.steps.transfer")]


def test_every_module_of_the_library_is_in_a_layer() -> None:
    loose = {m for m in _modules() if m.split(".")[0] == "runbook" and _layer(m) is None}
    assert loose <= {"runbook", "runbook.cli", *(f"runbook.{layer}" for layer in LAYERS)}


def test_modules_are_small_unless_declarative() -> None:
    long = {
        str(path.relative_to(LIB)): len(path.read_text(encoding="utf-8").splitlines())
        for path in LIB.rglob("*.py")
    }
    assert {p: n for p, n in long.items() if n > MAX_MODULE_LINES and p not in DECLARATIVE} == {}


def test_long_functions_say_why() -> None:
    unexplained = []
    for path in LIB.rglob("*.py"):
        if str(path.relative_to(LIB)) in DECLARATIVE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES and REASON not in (ast.get_docstring(node) or ""):
                unexplained.append(f"{path.relative_to(LIB)}:{node.lineno} {node.name} {length}")
    assert unexplained == []


def test_architecture_names_only_modules_that_exist() -> None:
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    found = re.findall(r"`((?:runbook|coldchain)(?:[./][a-z_0-9]+)+)/?`", text)
    named = {name.removesuffix(".py").replace("/", ".") for name in found}
    assert named, "ARCHITECTURE.md names no module"
    missing = []
    for name in named:
        path = LIB / name.replace(".", "/")
        if not (path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()):
            missing.append(name)
    assert missing == []
    listed = {m for m in _modules() if m.startswith("runbook.") and _layer(m)}
    unnamed = sorted(listed - named)
    assert unnamed == [], "ARCHITECTURE.md does not place these modules"


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_architecture_describes_each_layer(layer: str) -> None:
    assert f"runbook/{layer}/" in (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
