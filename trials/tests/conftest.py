"""Trials test fixtures: the seeded defaults, restored when a transactional test (a browser test) flushed them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from segments.models import CustomProperty
from trials.loop.defaults import FIT_RULE_PROPERTIES, FIT_RULES
from trials.loop.hooks import relevant_names_forget
from trials.loop.models import FitRule
from trials.plays.defaults import PLAYS
from trials.plays.models import Play
from trials.tests.holdouts import seeds_without_holdout


@pytest.fixture(autouse=True)
def default_fit_rules(db: Any) -> None:
    for scope, key, value_type in FIT_RULE_PROPERTIES:  # declared by trials.0017; gone after a flush
        CustomProperty.objects.get_or_create(scope=scope, key=key, defaults={"value_type": value_type, "label": key})
    if not FitRule.objects.exists():
        FitRule.objects.bulk_create([FitRule(**row) for row in FIT_RULES])


@pytest.fixture(autouse=True)
def default_plays(db: Any) -> None:
    if not Play.objects.exists():
        Play.objects.bulk_create([Play(**row) for row in PLAYS])


@pytest.fixture(autouse=True)
def seeded_experiments_without_holdout(default_plays: None) -> None:
    """Tests about holdouts set their own (see trials.tests.holdouts)."""
    seeds_without_holdout()


@pytest.fixture(autouse=True)
def fresh_relevant_names() -> Iterator[None]:
    """Each test reads the definition its own database holds (the hook keeps a per-process copy)."""
    relevant_names_forget()
    yield
    relevant_names_forget()
