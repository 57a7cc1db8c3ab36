"""Reads for the intake pages: violations per event, recent ingestion errors, the live event feed."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Max, QuerySet

from audiences.models import Event
from integrations.tracking.models import IngestionError, TrackingPlan, TrackingPlanViolation

DEBUGGER_PAGE = 50


def violation_counts(plan: TrackingPlan) -> list[dict[str, Any]]:
    """Violations of a plan grouped by event and kind, with their number and the latest time (one query)."""
    rows = (
        TrackingPlanViolation.objects.filter(plan=plan)
        .values("event_name", "kind")
        .annotate(count=Count("id"), latest=Max("received_at"))
        .order_by("-count", "event_name")
    )
    return [dict(row) for row in rows]


def ingestion_errors() -> QuerySet[IngestionError]:
    return IngestionError.objects.select_related("source")


def debugger_events(*, source_id: int | None, event_type: str, name: str, after_id: int) -> list[dict[str, Any]]:
    """The newest events (after `after_id`, when given), newest first, as plain dicts for the live page."""
    events = Event.objects.order_by("-id")
    if source_id:
        events = events.filter(source_id=source_id)
    if event_type:
        events = events.filter(type=event_type)
    if name:
        events = events.filter(name=name)
    if after_id:
        events = events.filter(id__gt=after_id)
    rows = events.values(
        "id", "source__name", "type", "name", "user_id", "anonymous_id", "customer_id", "timestamp", "received_at",
        "properties", "context",
    )[:DEBUGGER_PAGE]  # fmt: skip
    return [dict(row) for row in rows]
