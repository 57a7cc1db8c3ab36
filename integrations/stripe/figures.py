"""The dashboard's subscription figures, from the Stripe mirror (registered in config.figures by
IntegrationsConfig.ready)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, Sum

from integrations.stripe.models import Subscription


def subscription_figures() -> dict[str, Any]:
    """Subscriptions by status with MRR in the workspace currency, and MRR in currencies without a rate (per
    currency: it has no converted value, so it is shown apart, never added to the total). Two queries."""
    by_status = Subscription.objects.aggregate(
        trialing=Count("id", filter=Q(status=Subscription.Status.TRIALING)),
        active=Count("id", filter=Q(status=Subscription.Status.ACTIVE)),
        past_due=Count("id", filter=Q(status=Subscription.Status.PAST_DUE)),
        mrr_cents=Sum("mrr_cents"),
    )
    unconverted = (
        Subscription.objects.filter(mrr_amount__gt=0, mrr_cents__isnull=True)
        .order_by("currency")
        .values_list("currency")
        .annotate(total=Sum("mrr_amount"))
    )
    return {
        "trialing": by_status["trialing"],
        "active": by_status["active"],
        "past_due": by_status["past_due"],
        "mrr_cents": by_status["mrr_cents"] or 0,
        "mrr_unconverted": list(unconverted),
    }
