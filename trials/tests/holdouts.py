"""Holdouts in tests: a test that is not about holdouts chooses "no holdout" explicitly (as a user would have to),
so which customers are sent an email or get an alert never depends on their ids, which differ by database."""

from __future__ import annotations

from typing import Any

from trials.messaging.models import MessageTemplate
from trials.plays.models import Play


def without_holdout(fields: dict[str, Any]) -> dict[str, Any]:
    """A template's or play's fields with the explicit "no holdout" choice, unless they set a holdout."""
    percent = fields.get("holdout_percent", 0)
    return {**fields, "holdout_percent": percent, "no_holdout": percent == 0}


def seeds_without_holdout() -> None:
    """The seeded templates and plays (10% held out since trials.0014) with "no holdout" chosen."""
    MessageTemplate.objects.update(holdout_percent=0, no_holdout=True)
    Play.objects.update(holdout_percent=0, no_holdout=True)
