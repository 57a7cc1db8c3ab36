"""The kernel stays at the bottom: config imports no app above it, has no import cycle, and hides no import in a
function (docs/architecture.md, Kernel). The URL map and the demo data set are composition roots and may name
the apps; everything else registers into the kernel from the apps' AppConfig.ready()."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

APPS_ABOVE = ("audiences", "segments", "trials", "offers", "integrations")
COMPOSITION_ROOTS = ("config.urls", "config.demo", "config.management.commands.seed_demo")
CONFIG = Path(__file__).resolve().parents[1]


def _kernel_module(name: str) -> bool:
    skipped = (".tests", ".migrations")
    return not any(part in name for part in skipped) and not name.startswith(COMPOSITION_ROOTS)


def test_config_imports_no_app_above_it() -> None:
    graph = grimp.build_graph("config", *APPS_ABOVE, include_external_packages=False, cache_dir=None)
    upward = sorted(
        f"{module} -> {imported}"
        for module in graph.find_children("config") | graph.find_descendants("config")
        if _kernel_module(module)
        for imported in graph.find_modules_directly_imported_by(module)
        if imported.split(".")[0] in APPS_ABOVE
    )
    assert upward == []


def test_config_has_no_import_cycle() -> None:
    graph = grimp.build_graph("config", include_external_packages=False, cache_dir=None)
    modules = {module for module in graph.modules if _kernel_module(module) or module.startswith("config.demo")}
    cycles = sorted(
        f"{module} <-> {imported}"
        for module in modules
        for imported in graph.find_modules_directly_imported_by(module)
        if imported in modules and graph.chain_exists(imported, module)
    )
    assert cycles == []


def test_no_function_local_imports_in_config_but_in_app_ready() -> None:
    hidden = []
    for path in sorted(CONFIG.rglob("*.py")):
        if {"tests", "migrations"} & set(path.relative_to(CONFIG).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if path.name == "apps.py" and node.name == "ready":
                continue
            hidden += [
                f"{path.relative_to(CONFIG)}:{inner.lineno} in {node.name}"
                for inner in ast.walk(node)
                if isinstance(inner, ast.Import | ast.ImportFrom)
            ]
    assert hidden == []
