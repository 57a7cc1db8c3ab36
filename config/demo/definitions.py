"""Starter definitions for the demo: computed traits and live audiences over the demo's events, so a first look at
the app shows them working. Created through the same services as the UI; idempotent (skipped when one with the same
key or name exists), and left alone by `seed_demo --reset`, which only deletes demo data."""

from __future__ import annotations

from typing import Any

from audiences.models import ComputedTrait
from segments.audience_services import segment_live_set
from segments.evaluation import segment_evaluate
from segments.models import Segment
from segments.services import segment_save
from segments.traits.evaluation import computed_trait_backfill
from segments.traits.services import computed_trait_save

Kind = ComputedTrait.Kind

COMPUTED_TRAITS: list[dict[str, Any]] = [
    {"key": "reports_last_7_days", "name": "Reports in the last 7 days", "kind": Kind.COUNT,
     "event": "Report Generated", "window_days": 7},
    {"key": "projects_created", "name": "Projects created", "kind": Kind.COUNT, "event": "Project Created"},
    {"key": "favourite_report", "name": "Most generated report type", "kind": Kind.MOST_FREQUENT,
     "event": "Report Generated", "property": "report_type"},
    {"key": "integrations", "name": "Integrations connected", "kind": Kind.UNIQUE_LIST,
     "event": "Integration Connected", "property": "integration"},
    {"key": "days_since_last_report", "name": "Days since the last report", "kind": Kind.DAYS_SINCE_LAST,
     "event": "Report Generated"},
    {"key": "trial_days_left", "name": "Trial days left", "kind": Kind.TRIAL_DAYS_REMAINING},
]  # fmt: skip


def _group(*children: dict[str, Any]) -> dict[str, Any]:
    return {"type": "group", "operator": "and", "children": list(children)}


def _leaf(prop: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"type": "condition", "property": prop, "operator": operator, "value": value}


LIVE_AUDIENCES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "Power users this week",
        "Three or more reports in the last 7 days: ready for a sales conversation.",
        _group(_leaf("computed.reports_last_7_days", "gte", 3)),
    ),
    (
        "Trials ending within 3 days",
        "Trialing subscriptions whose trial ends in the next 3 days.",
        _group(_leaf("subscription.is_free_trial", "is_true"), _leaf("subscription.trial_end", "within_next_days", 3)),
    ),
    (
        "Trialists without a project",
        "On a trial and never created a project: the activation nudge's audience.",
        _group(
            _leaf("subscription.is_free_trial", "is_true"),
            {"type": "event", "event": "Project Created", "operator": "not_performed"},
        ),
    ),
]


def demo_definitions_ensure() -> dict[str, int]:
    """Create the starter computed traits and live audiences that are missing, then compute all of them over the
    current data (a rebuilt demo data set needs its values and memberships again). Returns what was created."""
    created = {"computed_traits": 0, "live_audiences": 0}
    existing = {trait.key: trait for trait in ComputedTrait.objects.filter(key__in=[d["key"] for d in COMPUTED_TRAITS])}
    for definition in COMPUTED_TRAITS:
        trait = existing.get(definition["key"])
        if trait is None:
            trait = computed_trait_save(**definition)
            created["computed_traits"] += 1
        computed_trait_backfill(trait=trait)
    segments = {segment.name: segment for segment in Segment.objects.filter(name__in=[n for n, _, _ in LIVE_AUDIENCES])}
    for name, description, conditions in LIVE_AUDIENCES:
        segment = segments.get(name)
        if segment is None:
            segment = segment_save(name=name, description=description, conditions=conditions, tags=["demo"])
            segment = segment_live_set(segment=segment, is_live=True)
            created["live_audiences"] += 1
        segment_evaluate(segment=segment)
    return created
