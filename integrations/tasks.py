"""Celery entry points of the integrations app; each calls one service."""

from __future__ import annotations

from dataclasses import asdict

from celery import shared_task

from integrations.destinations import deliveries_dispatch, destination_flush
from integrations.imports import import_job_run
from integrations.models import ImportJob
from integrations.stripe.tasks import process_stripe_event as process_stripe_event
from integrations.stripe.tasks import reconcile_stripe_events as reconcile_stripe_events
from integrations.stripe.tasks import retry_stripe_events as retry_stripe_events


@shared_task(name="integrations.tasks.run_import")
def run_import(job_id: int) -> int:
    """Run (or resume) an import job; returns the rows processed so far."""
    job = ImportJob.objects.select_related("source").get(pk=job_id)
    if job.status == ImportJob.Status.DONE:
        return job.processed_rows
    return import_job_run(job=job).processed_rows


@shared_task(name="integrations.tasks.flush_destination")
def flush_destination(destination_id: int) -> dict[str, int]:
    """Send one destination's due deliveries (queued on commit by outbound_emit, resume and replay, and by the
    sweep); queues itself again when it stopped for time with more due."""
    result = destination_flush(destination_id=destination_id)
    if result.more:
        flush_destination.delay(destination_id)
    return {name: value for name, value in asdict(result).items() if name != "more"}


@shared_task(name="integrations.tasks.dispatch_destination_deliveries")
def dispatch_destination_deliveries() -> int:
    """Beat sweep: a flush for every destination with due deliveries (retries whose backoff has passed)."""
    return len(deliveries_dispatch())
