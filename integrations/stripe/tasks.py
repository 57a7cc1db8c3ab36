"""Celery entry points of the Stripe mirror; each calls one service.

The task names are the ones they had in integrations.tasks (config/schedules.py, config/queues.py, beat rows and
queued messages use them); integrations.tasks imports this module so autodiscovery still finds them.
"""

from __future__ import annotations

from celery import shared_task
from django.db import transaction

from config.jobs import JobReport, JobSkipped, periodic_job
from config.retry import retry_backoff
from integrations.stripe.api import StripeNotConfigured, stripe_client
from integrations.stripe.event_models import StripeEvent
from integrations.stripe.processing import stripe_event_process, stripe_events_due
from integrations.stripe.sync import stripe_events_reconcile


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


def queue_processing(event_pk: int) -> None:
    """Queue the processing task once the current transaction commits."""
    transaction.on_commit(lambda: process_stripe_event.delay(event_pk))


@periodic_job(
    task="integrations.tasks.retry_stripe_events",
    name="stripe event retries",
    every=300,
    record=False,
    idle=int,
    description="Re-queues failed Stripe events whose backoff has passed.",
)
def retry_stripe_events() -> int:
    """Beat sweep for failed Stripe events whose retry was lost (e.g. the worker restarted): re-queues those whose
    backoff has passed; returns how many."""
    due = stripe_events_due()
    for pk in due:
        queue_processing(pk)
    return len(due)


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
