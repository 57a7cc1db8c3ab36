"""The house's shape, checked on every run: no import cycle between modules, no import hidden in a function to
reach another app, and the layer contract in `.importlinter` kept (docs/architecture.md).

`make lint` runs import-linter too; these tests fail in `pytest` alone, so a new arrow running back up the flow
or a new cycle is caught wherever the suite runs.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("config", "audiences", "segments", "trials", "offers", "integrations")


def _project_module(name: str) -> bool:
    parts = name.split(".")
    return "tests" not in parts and "migrations" not in parts


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    modules = sorted(m for m in graph.modules if _project_module(m))
    inside = set(modules)
    edges = {m: sorted(i for i in graph.find_modules_directly_imported_by(m) if i in inside) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in modules:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            for offset, target in enumerate(edges[node][position:], start=position):
                if target not in index:
                    work.append((node, offset + 1))
                    work.append((target, 0))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
    return found


def test_no_module_imports_itself_through_others() -> None:
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(*APPS)
    assert _cycles(graph) == []


def test_the_cycle_finder_sees_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("a.one", "a.two", "a.three"):
        graph.add_module(module)
    graph.add_import(importer="a.one", imported="a.two")
    graph.add_import(importer="a.two", imported="a.three")
    graph.add_import(importer="a.three", imported="a.one")
    assert _cycles(graph) == [["a.one", "a.three", "a.two"]]


def _hidden_imports(source: str, own_app: str) -> list[str]:
    """Imports of another app's modules made inside a function other than an AppConfig's `ready()`."""
    hidden: list[str] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, child.name)
                continue
            if function and function != "ready" and isinstance(child, (ast.Import, ast.ImportFrom)):
                names = [alias.name for alias in child.names] if isinstance(child, ast.Import) else [child.module or ""]
                hidden.extend(
                    [
                        f"line {child.lineno} in {function}(): {name}"
                        for name in names
                        if name.split(".")[0] in APPS and name.split(".")[0] != own_app
                    ]
                )
            visit(child, function)

    visit(ast.parse(source), None)
    return hidden


def test_no_import_across_apps_is_hidden_in_a_function() -> None:
    hidden = {
        str(path.relative_to(ROOT)): found
        for app in APPS
        for path in sorted((ROOT / app).rglob("*.py"))
        if _project_module(".".join(path.relative_to(ROOT).parts)) and (found := _hidden_imports(path.read_text(), app))
    }
    assert hidden == {}


def test_the_hidden_import_finder_sees_one() -> None:
    source = (
        "def f():\n    from trials.models import Trial\n\nclass C:\n    def ready(self):\n        import offers.apps\n"
    )
    assert _hidden_imports(source, "segments") == ["line 2 in f(): trials.models"]


@pytest.mark.skipif(not (ROOT / ".importlinter").exists(), reason="the contract file is part of the repository")
def test_the_layer_contract_is_kept() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:]
