"""Celery entry points of the integrations app; each calls one service."""

from __future__ import annotations

from dataclasses import asdict

from celery import shared_task

from config.models import TaskRun
from config.retry import retry_backoff
from config.services import task_run_recorded
from integrations.destinations import deliveries_dispatch, destination_flush
from integrations.imports import import_job_run
from integrations.models import ImportJob
from integrations.stripe.models import StripeEvent
from integrations.stripe_api import StripeNotConfigured, stripe_client
from integrations.stripe_sync import stripe_events_reconcile
from integrations.stripe_webhooks import stripe_event_process, stripe_events_retry_due


@shared_task(name="integrations.tasks.run_import")
def run_import(job_id: int) -> int:
    """Run (or resume) an import job; returns the rows processed so far."""
    job = ImportJob.objects.select_related("source").get(pk=job_id)
    if job.status == ImportJob.Status.DONE:
        return job.processed_rows
    return import_job_run(job=job).processed_rows


@shared_task(name="integrations.tasks.process_stripe_event")
def process_stripe_event(event_pk: int) -> str:
    """Apply a stored Stripe event once; a failure is recorded on the event and tried again after a backoff
    (30 s, doubling, up to StripeEvent.MAX_ATTEMPTS tries; the beat sweep catches retries a restart lost)."""
    status = stripe_event_process(event_pk=event_pk)
    if status == StripeEvent.Status.FAILED:
        attempts = StripeEvent.objects.values_list("attempts", flat=True).get(pk=event_pk)
        if attempts < StripeEvent.MAX_ATTEMPTS:
            process_stripe_event.apply_async((event_pk,), countdown=retry_backoff(attempts).total_seconds())
    return status


@shared_task(name="integrations.tasks.retry_stripe_events")
def retry_stripe_events() -> int:
    """Beat sweep for failed Stripe events whose retry was lost (e.g. the worker restarted)."""
    return stripe_events_retry_due()


@shared_task(name="integrations.tasks.reconcile_stripe_events")
def reconcile_stripe_events() -> int:
    """Daily: fetch recent Stripe events no webhook delivered (needs STRIPE_API_KEY; otherwise does nothing)."""
    with task_run_recorded("stripe reconcile") as run:
        try:
            client = stripe_client()
        except StripeNotConfigured as missing:
            run.outcome, run.detail = TaskRun.Outcome.SKIPPED, {"reason": str(missing)}
            return 0
        found = stripe_events_reconcile(client=client)
        run.detail = {"missed_events_found": found}
        return found


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
