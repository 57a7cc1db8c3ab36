"""Celery entry points of the outbound layer (registered under their old names, which queues and beat rows use)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

from celery import shared_task
from django.db.models import Exists, OuterRef
from django.utils import timezone

from config.jobs import periodic_job
from config.locks import task_lock
from integrations.destinations.models import Destination, DestinationDelivery
from integrations.destinations.sending import destination_flush


@shared_task(name="integrations.tasks.flush_destination")
def flush_destination(destination_id: int) -> dict[str, int]:
    """Send one destination's due deliveries (queued on commit by outbound_emit, resume and replay, and by the
    sweep); queues itself again when it stopped for time with more due."""
    result = destination_flush(destination_id=destination_id)
    if result.more:
        flush_destination.delay(destination_id)
    return {name: value for name, value in asdict(result).items() if name != "more"}


def deliveries_dispatch() -> list[int]:
    """The beat sweep's work, kept beside the flush task it queues: a flush for every destination (not paused)
    with deliveries due now — retries whose backoff has passed, and anything a lost task left behind. Returns
    those destinations' ids (none when another sweep holds the lease)."""
    with task_lock("destination deliveries", ttl=timedelta(minutes=2)) as acquired:
        if not acquired:
            return []
        due = DestinationDelivery.objects.filter(
            destination=OuterRef("pk"), status=DestinationDelivery.Status.PENDING, next_attempt_at__lte=timezone.now()
        )
        ids = list(
            Destination.objects.filter(is_paused=False).filter(Exists(due)).order_by("pk").values_list("pk", flat=True)
        )
    for destination_id in ids:
        flush_destination.delay(destination_id)
    return ids


@periodic_job(
    task="integrations.tasks.dispatch_destination_deliveries",
    name="destination deliveries",
    every=60,
    record=False,
    idle=int,
    description="Flushes every destination with due deliveries: retries whose backoff has passed.",
)
def dispatch_destination_deliveries() -> int:
    """Beat sweep: a flush for every destination with due deliveries (retries whose backoff has passed)."""
    return len(deliveries_dispatch())
