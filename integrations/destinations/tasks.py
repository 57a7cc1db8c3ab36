"""Celery entry points of the outbound layer (registered under their old names, which queues and beat rows use)."""

from __future__ import annotations

from dataclasses import asdict

from celery import shared_task

from config.jobs import periodic_job
from integrations.destinations.sending import deliveries_dispatch, destination_flush


@shared_task(name="integrations.tasks.flush_destination")
def flush_destination(destination_id: int) -> dict[str, int]:
    """Send one destination's due deliveries (queued on commit by outbound_emit, resume and replay, and by the
    sweep); queues itself again when it stopped for time with more due."""
    result = destination_flush(destination_id=destination_id)
    if result.more:
        flush_destination.delay(destination_id)
    return {name: value for name, value in asdict(result).items() if name != "more"}


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
