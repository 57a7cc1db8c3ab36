"""The dashboard's headline figures, gathered from the apps that own them.

The kernel draws the home page but owns none of its numbers: customers and events belong to the profiles,
subscriptions and MRR to the Stripe mirror. Each app registers a function returning its figures (a few named
values, one or two queries) from its `AppConfig.ready()`; the dashboard shows their union. The kernel never
imports the apps above it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

FigureSource = Callable[[], Mapping[str, Any]]
"""Returns some of the dashboard's named figures (keys the home page template reads)."""

_sources: list[FigureSource] = []


def register_figures(source: FigureSource) -> None:
    """Add an app's figures to the dashboard (from its `AppConfig.ready()`; registering one twice is a no-op)."""
    if source not in _sources:
        _sources.append(source)


def dashboard_figures() -> dict[str, Any]:
    """Every registered app's figures, merged (each source's queries only)."""
    figures: dict[str, Any] = {}
    for source in _sources:
        figures.update(source())
    return figures
