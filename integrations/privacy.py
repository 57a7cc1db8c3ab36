"""What GDPR erasure (audiences.privacy) does with the Stripe mirror: Stripe events and raw webhook bodies,
deleted whole (their payloads hold far more than the ids that found them: addresses, card details). The intake
and outbound packages keep their own rules (integrations.tracking.privacy, integrations.destinations.privacy).
"""

from __future__ import annotations

from typing import Any

from django.db import models

from audiences.privacy.rules import Action, ErasureRule
from audiences.privacy.traces import PersonTraces
from integrations.stripe.event_models import StripeEvent, StripeWebhookDelivery
from integrations.stripe.models import StripeCustomer


def _linked_elsewhere() -> models.QuerySet[Any]:
    return StripeCustomer.objects.filter(customer__isnull=False).values("stripe_customer_id")


def _stripe_events_owned(traces: PersonTraces) -> models.QuerySet[Any]:
    return StripeEvent.objects.filter(stripe_customer_id__in=traces.tag("stripe_customer_ids"))


def _stripe_events_searched(traces: PersonTraces) -> models.QuerySet[Any]:
    """Events of no linked Stripe customer (disputes name only a charge; an unlinked customer may be theirs)."""
    return StripeEvent.objects.exclude(stripe_customer_id__in=_linked_elsewhere())


def _stripe_deliveries_owned(traces: PersonTraces) -> models.QuerySet[Any]:
    return StripeWebhookDelivery.objects.filter(stripe_customer_id__in=traces.tag("stripe_customer_ids"))


def _stripe_deliveries_searched(traces: PersonTraces) -> models.QuerySet[Any]:
    """Deliveries naming no linked Stripe customer: refused bodies, disputes, unlinked customers."""
    return StripeWebhookDelivery.objects.exclude(stripe_customer_id__in=_linked_elsewhere())


ERASURE_RULES = [
    ErasureRule(
        "integrations.StripeEvent",
        action=Action.DELETE,
        owned=_stripe_events_owned,
        searched=_stripe_events_searched,
        search_tags=("stripe_charge_ids",),
    ),
    ErasureRule(
        "integrations.StripeWebhookDelivery",
        action=Action.DELETE,
        owned=_stripe_deliveries_owned,
        searched=_stripe_deliveries_searched,
        search_tags=("stripe_charge_ids",),
    ),
]
