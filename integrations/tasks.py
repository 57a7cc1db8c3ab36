"""Celery entry points of the integrations app; each calls one service. Also the face Celery's autodiscovery
reads: it imports the task modules of the intake and outbound packages, whose tasks keep their
`integrations.tasks.<name>` names."""

from __future__ import annotations

from celery import shared_task

from config.jobs import JobReport, JobSkipped, periodic_job
from config.retry import retry_backoff
from integrations.destinations import tasks as destination_tasks
from integrations.models import StripeEvent
from integrations.stripe_api import StripeNotConfigured, stripe_client
from integrations.stripe_sync import stripe_events_reconcile
from integrations.stripe_webhooks import stripe_event_process, stripe_events_retry_due
from integrations.tracking import tasks as tracking_tasks

# Imported for Celery's autodiscovery, which looks in `<app>.tasks`.
TASK_MODULES = (tracking_tasks, destination_tasks)


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


@periodic_job(
    task="integrations.tasks.retry_stripe_events",
    name="stripe event retries",
    every=300,
    record=False,
    idle=int,
    description="Re-queues failed Stripe events whose backoff has passed.",
)
def retry_stripe_events() -> int:
    """Beat sweep for failed Stripe events whose retry was lost (e.g. the worker restarted)."""
    return stripe_events_retry_due()


@periodic_job(
    task="integrations.tasks.reconcile_stripe_events",
    name="stripe reconcile",
    every=24 * 3600,
    idle=int,
    description="Fetches the last 3 days of Stripe events and processes those no webhook delivered.",
)
def reconcile_stripe_events() -> JobReport:
    """Daily: fetch recent Stripe events no webhook delivered (needs STRIPE_API_KEY; otherwise does nothing)."""
    try:
        client = stripe_client()
    except StripeNotConfigured as missing:
        raise JobSkipped(str(missing), result=0) from missing
    found = stripe_events_reconcile(client=client)
    return JobReport(found, {"missed_events_found": found})
