"""Saving the loop's settings (activation and habit definition, score weights, fit rules): each save marks the open
trials due, so the sweep re-derives their stage and scores with the new rules.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from trials.loop.hooks import relevant_names_forget
from trials.loop.lifecycle import activation_definition, trials_mark_due
from trials.loop.models import ActivationDefinition, FitRule
from trials.loop.scores import score_settings


def activation_definition_update(*, data: dict[str, Any]) -> ActivationDefinition:
    """Save the activation and habit definition (validated by trials.forms) and mark open trials due."""
    definition = activation_definition()
    for field, value in data.items():
        setattr(definition, field, value)
    with transaction.atomic():
        definition.save()
        trials_mark_due()
    relevant_names_forget()
    return definition


def score_settings_update(*, data: dict[str, Any]) -> None:
    """Save the score weights and thresholds and mark open trials due for re-scoring."""
    settings = score_settings()
    for field, value in data.items():
        setattr(settings, field, value)
    with transaction.atomic():
        settings.save()
        trials_mark_due()


def fit_rule_create(*, data: dict[str, Any]) -> FitRule:
    """Add a fit rule; open trials are re-scored by the sweep."""
    with transaction.atomic():
        rule = FitRule.objects.create(**data)
        trials_mark_due()
    return rule


def fit_rule_delete(*, rule_id: int) -> None:
    """Remove a fit rule; open trials are re-scored by the sweep."""
    with transaction.atomic():
        FitRule.objects.filter(pk=rule_id).delete()
        trials_mark_due()
