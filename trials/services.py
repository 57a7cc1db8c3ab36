"""Writes on subscriptions, starting with the normalised MRR every segment and report relies on."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.db.models import OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

from audiences.models import Customer
from trials.models import BillingInterval, RecurringPrice, Subscription

# Months per one interval unit: the accepted normalisation (a year is 12 months, a week 52/12 of a month...).
MONTHS_PER_INTERVAL: dict[str, Decimal] = {
    BillingInterval.DAY: Decimal(12) / Decimal(365),
    BillingInterval.WEEK: Decimal(12) / Decimal(52),
    BillingInterval.MONTH: Decimal(1),
    BillingInterval.YEAR: Decimal(12),
}
MRR_STATUSES = {Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE}


def monthly_amount(*, amount_cents: int, interval: str, interval_count: int, quantity: int) -> Decimal:
    """A recurring charge expressed per month: amount × quantity ÷ (months in interval × interval count)."""
    months = MONTHS_PER_INTERVAL[interval] * interval_count
    return Decimal(amount_cents) * quantity / months


def _price_monthly(price: RecurringPrice, quantity: int) -> Decimal:
    if price.usage_type == RecurringPrice.UsageType.METERED:
        return Decimal(0)
    return monthly_amount(
        amount_cents=price.amount_cents, interval=price.interval, interval_count=price.interval_count, quantity=quantity
    )


def subscription_mrr_cents(subscription: Subscription) -> int:
    """Normalised MRR of one subscription, in cents.

    Counts only active and past-due subscriptions; trials, free and metered prices count zero; plan and
    add-ons are normalised per interval and quantity; only a `forever` discount reduces MRR (a temporary
    one does not change the recurring run-rate), and a 100% discount makes it zero.
    """
    if subscription.status not in MRR_STATUSES:
        return 0
    plan = subscription.plan
    gross = _price_monthly(plan, subscription.quantity)
    for item in subscription.add_on_items.all():
        gross += _price_monthly(item.add_on, item.quantity)
    if subscription.discount_duration == Subscription.DiscountDuration.FOREVER:
        if subscription.discount_percent is not None:
            gross -= gross * subscription.discount_percent / 100
        if subscription.discount_amount_cents:
            # amount_off applies once per invoice, i.e. per billing interval of the plan.
            gross -= monthly_amount(
                amount_cents=subscription.discount_amount_cents,
                interval=plan.interval,
                interval_count=plan.interval_count,
                quantity=1,
            )
    return max(0, int(gross.quantize(Decimal(1), rounding=ROUND_HALF_UP)))


def subscription_refresh_mrr(*, subscription: Subscription) -> int:
    """Recompute and store a subscription's MRR and its customer's total; returns the subscription's MRR."""
    subscription.mrr_cents = subscription_mrr_cents(subscription)
    subscription.save(update_fields=["mrr_cents", "updated_at"])
    customer_refresh_mrr(customer_ids=[subscription.customer_id])
    return subscription.mrr_cents


def customer_refresh_mrr(*, customer_ids: list[int]) -> int:
    """Set each listed customer's MRR to the sum over their subscriptions, in one UPDATE. Returns rows updated."""
    total = (
        Subscription.objects.filter(customer_id=OuterRef("pk"))
        .values("customer_id")
        .annotate(total=Sum("mrr_cents"))
        .values("total")
    )
    return Customer.objects.filter(pk__in=customer_ids).update(mrr_cents=Coalesce(Subquery(total), 0))
