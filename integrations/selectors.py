"""Reads for the integrations pages: violations per event, recent errors, the live event feed, destination
health and delivery logs."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from audiences.models import Event
from integrations.models import (
    Destination,
    DestinationDelivery,
    IngestionError,
    TrackingPlan,
    TrackingPlanViolation,
)

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


HEALTH_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class DestinationHealth:
    """How a destination is doing: what waits, what failed for good, and how its recent attempts went."""

    pending: int = 0
    failed: int = 0
    attempted_recently: int = 0
    delivered_recently: int = 0
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None

    @property
    def success_rate(self) -> float | None:
        """Percent of the deliveries tried in the last 24 h that were delivered; None when none were tried."""
        if not self.attempted_recently:
            return None
        return 100 * self.delivered_recently / self.attempted_recently


def destination_health(destination_ids: Collection[int]) -> dict[int, DestinationHealth]:
    """Health of each destination, in one grouped query over their deliveries."""
    since = timezone.now() - HEALTH_WINDOW
    status = DestinationDelivery.Status
    rows = (
        DestinationDelivery.objects.filter(destination_id__in=destination_ids)
        .values("destination_id")
        .annotate(
            pending=Count("pk", filter=Q(status=status.PENDING)),
            failed=Count("pk", filter=Q(status=status.FAILED)),
            attempted_recently=Count("pk", filter=Q(last_attempt_at__gte=since)),
            delivered_recently=Count("pk", filter=Q(last_attempt_at__gte=since, status=status.DELIVERED)),
            last_success_at=Max("delivered_at"),
            last_failure_at=Max("last_failed_at"),
        )
        .order_by()
    )
    health = {pk: DestinationHealth() for pk in destination_ids}
    for row in rows:
        destination_id = row.pop("destination_id")
        health[destination_id] = DestinationHealth(**row)
    return health


def destination_deliveries(destination: Destination) -> QuerySet[DestinationDelivery]:
    """A destination's delivery log (newest first when paginated), with each delivery's customer."""
    return DestinationDelivery.objects.filter(destination=destination).select_related("customer")
