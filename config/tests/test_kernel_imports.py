"""The kernel hides no import in a function, not even of a module of its own (docs/architecture.md, Kernel): what
it runs on behalf of an app, the app registers from its AppConfig.ready(). That config imports no app above it
and has no cycle is the house's contract, checked for every layer in config/tests/test_house.py."""

from __future__ import annotations

import ast
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[1]


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
