"""A customer's billing columns and traits (MRR, LTV, plan, status, spend tier, ...), recomputed from the mirror.

Run after every applied Stripe event and whenever a conversion rate changes, so segments and the profile read
current billing facts without asking Stripe.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Sum

from audiences.models import Customer
from integrations.stripe.currency import billing_settings
from integrations.stripe.models import Charge, Subscription

SPEND_TIERS = [(0, "none"), (1, "low"), (100_00, "medium"), (1_000_00, "high")]  # lifetime value in cents


def _spend_tier(ltv_cents: int) -> str:
    tier = SPEND_TIERS[0][1]
    for threshold, name in SPEND_TIERS:
        if ltv_cents >= threshold:
            tier = name
    return tier


@transaction.atomic
def customer_billing_refresh(customer: Customer) -> dict[str, Any]:
    """Recompute a customer's revenue columns and billing traits from the mirrored rows; returns the traits."""
    subscriptions = list(customer.subscriptions.select_related("plan").order_by("-started_at"))
    live = [
        s
        for s in subscriptions
        if s.status not in (Subscription.Status.CANCELED, Subscription.Status.INCOMPLETE_EXPIRED)
    ]
    current = live[0] if live else (subscriptions[0] if subscriptions else None)
    paid = Charge.objects.filter(customer=customer, paid=True, status="succeeded")
    totals = paid.aggregate(charged=Sum("amount_cents"), refunded=Sum("amount_refunded_cents"))
    ltv_cents = (totals["charged"] or 0) - (totals["refunded"] or 0)
    last_payment = paid.order_by("-charged_at").values_list("charged_at", flat=True).first()
    unconvertible = any(s.mrr_amount > 0 and s.mrr_cents is None for s in subscriptions)
    mrr_cents = None if unconvertible else sum(s.mrr_cents or 0 for s in subscriptions)
    currencies = sorted({s.currency or s.plan.currency for s in subscriptions if s.mrr_amount > 0})
    delinquent = any(s.status in (Subscription.Status.PAST_DUE, Subscription.Status.UNPAID) for s in subscriptions)
    next_billing = None
    billable = (Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE, Subscription.Status.TRIALING)
    if current and current.status in billable and not current.cancel_at_period_end:
        trialing = current.status == Subscription.Status.TRIALING
        next_billing = current.trial_end if trialing else current.current_period_end
    traits: dict[str, Any] = {
        "mrr": round(mrr_cents / 100, 2) if mrr_cents is not None else None,
        "mrr_currency": billing_settings().currency.lower(),
        "billing_currencies": currencies,
        "ltv": round(ltv_cents / 100, 2),
        "plan": current.plan.name if current else None,
        "billing_interval": current.plan.interval if current else None,
        "subscription_status": current.status if current else None,
        "trial_end_date": current.trial_end.date().isoformat() if current and current.trial_end else None,
        "next_billing_date": next_billing.date().isoformat() if next_billing else None,
        "payment_delinquent": delinquent,
        "spend_tier": _spend_tier(ltv_cents),
        "last_payment_date": last_payment.date().isoformat() if last_payment else None,
    }
    status = customer.subscriber_status
    if any(s.status in (Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE) for s in subscriptions):
        if status not in (Customer.SubscriberStatus.SAVED, Customer.SubscriberStatus.REACTIVATED):
            status = (
                Customer.SubscriberStatus.REACTIVATED
                if status == Customer.SubscriberStatus.CANCELED
                else Customer.SubscriberStatus.ACTIVE
            )
    elif subscriptions and all(s.status == Subscription.Status.CANCELED for s in subscriptions) and status:
        status = Customer.SubscriberStatus.CANCELED
    # Merge into the stored traits under a row lock, so traits another task wrote meanwhile are kept.
    stored = Customer.objects.select_for_update().only("traits").get(pk=customer.pk)
    customer.traits = {**stored.traits, **traits}
    customer.mrr_cents = max(mrr_cents, 0) if mrr_cents is not None else None
    customer.ltv_cents, customer.subscriber_status = ltv_cents, status
    customer.save(update_fields=["traits", "mrr_cents", "ltv_cents", "subscriber_status", "updated_at"])
    return traits
