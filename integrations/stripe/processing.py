"""Processing stored Stripe events: apply each exactly once, record failures for retry, run the waiting ones.

Processing locks the event's row, so an event delivered twice at the same moment is applied once; a failure is
recorded with its backoff (the task in integrations.stripe.tasks retries it, and a beat sweep catches retries that
were lost). An event whose customer is not linked yet waits, and runs as soon as a customer event links it.
"""

from __future__ import annotations

import logging
from functools import partial

from django.db import transaction
from django.utils import timezone

from config.retry import retry_backoff
from integrations.stripe.api import object_refetcher
from integrations.stripe.apply import stripe_event_apply
from integrations.stripe.customers import CustomerNotLinked
from integrations.stripe.event_models import StripeEvent
from integrations.stripe.models import StripeCustomer

logger = logging.getLogger(__name__)


def stripe_event_process(*, event_pk: int) -> str:
    """Apply a stored event exactly once; returns its status afterwards (failures are recorded, not raised)."""
    with transaction.atomic():
        stored = StripeEvent.objects.select_for_update().get(pk=event_pk)
        if stored.status in (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED):
            return str(stored.status)
        stored.attempts += 1
        try:
            with transaction.atomic():
                outcome = stripe_event_apply(stored.payload, refetch=object_refetcher())
        except CustomerNotLinked as waiting:
            stored.status, stored.last_error = StripeEvent.Status.WAITING, str(waiting)
        except Exception as error:
            logger.exception("processing Stripe event %s failed", stored.event_id)
            stored.status, stored.last_error = StripeEvent.Status.FAILED, f"{type(error).__name__}: {error}"
            stored.next_attempt_at = timezone.now() + retry_backoff(stored.attempts)
        else:
            stored.status = StripeEvent.Status.IGNORED if outcome == "ignored" else StripeEvent.Status.PROCESSED
            stored.processed_at, stored.last_error, stored.next_attempt_at = timezone.now(), "", None
            if stored.type in ("customer.created", "customer.updated", "customer.deleted"):
                _replay_waiting_once_linked(stored.stripe_customer_id)
        stored.save()
        return str(stored.status)


def _replay_waiting_once_linked(stripe_customer_id: str) -> None:
    """A customer event may have just linked its profile: its waiting events then run, after this commits."""
    if StripeCustomer.objects.filter(stripe_customer_id=stripe_customer_id, customer__isnull=False).exists():
        transaction.on_commit(partial(stripe_events_replay_waiting, stripe_customer_id=stripe_customer_id))


def stripe_events_replay_waiting(*, stripe_customer_id: str) -> int:
    """Re-queue, oldest first, the events that waited for this Stripe customer to be linked."""
    waiting = list(
        StripeEvent.objects.filter(stripe_customer_id=stripe_customer_id, status=StripeEvent.Status.WAITING)
        .order_by("created", "id")
        .values_list("pk", flat=True)
    )
    for pk in waiting:
        stripe_event_process(event_pk=pk)
    return len(waiting)


def stripe_events_due(*, limit: int = 200) -> list[int]:
    """Failed events whose backoff has passed and that have tries left (at most MAX_ATTEMPTS), oldest due first."""
    return list(
        StripeEvent.objects.filter(
            status=StripeEvent.Status.FAILED,
            next_attempt_at__lte=timezone.now(),
            attempts__lt=StripeEvent.MAX_ATTEMPTS,
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
