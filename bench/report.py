"""How every benchmark reports: a two-column table on stdout and its figures in bench/results/NAME.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def report(name: str, rows: list[tuple[str, str]], figures: dict[str, Any]) -> None:
    """Print the table and write the figures, so runs can be compared later."""
    width = max(len(label) for label, _ in rows)
    print("-" * (width + 40))
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    print("-" * (width + 40))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
