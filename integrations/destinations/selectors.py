"""Reads for the destination pages and API: each destination's health and its delivery log."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from integrations.destinations.models import Destination, DestinationDelivery

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
