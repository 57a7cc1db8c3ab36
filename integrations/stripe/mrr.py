"""Normalised MRR: what a subscription brings in per month, in its own currency and in the workspace's.

A subscription's MRR is worked out in its own currency (`mrr_amount`, Stripe's smallest unit) from what one
billing interval of each item costs — per unit, per package, graduated or volume tiers, or, for a metered
price, what the last invoice billed for its usage — normalised to a month, less `forever` discounts. It is
then converted to the workspace currency (`mrr_cents`, hundredths of a unit) with the admin's rate table, or
left empty when that currency has no rate, so no total ever adds up two currencies.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce

from audiences.models import Customer
from integrations.stripe.currency import Conversion, conversion
from integrations.stripe.models import BillingInterval, Coupon, Discount, Invoice, RecurringPrice, Subscription

# Months per one interval unit: the accepted normalisation (a year is 12 months, a week 52/12 of a month...).
MONTHS_PER_INTERVAL: dict[str, Decimal] = {
    BillingInterval.DAY: Decimal(12) / Decimal(365),
    BillingInterval.WEEK: Decimal(12) / Decimal(52),
    BillingInterval.MONTH: Decimal(1),
    BillingInterval.YEAR: Decimal(12),
}


MRR_STATUSES = {Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE}


BILLED_INVOICES_READ = 12
"""How many of a subscription's latest invoices are searched for what a price was last billed."""


def monthly_amount(*, amount_cents: int | Decimal, interval: str, interval_count: int, quantity: int) -> Decimal:
    """A recurring charge expressed per month: amount × quantity ÷ (months in interval × interval count)."""
    months = MONTHS_PER_INTERVAL[interval] * interval_count
    return Decimal(amount_cents) * quantity / months


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def _tiered_amount(tiers: Sequence[Mapping[str, Any]], mode: str, quantity: int) -> Decimal:
    """One interval of a tiered price for `quantity` units (no units, nothing billed).

    Graduated: each tier prices the units that fall in it, plus its flat amount when any unit does. Volume:
    the tier the whole quantity falls in prices every unit, plus its flat amount.
    """
    if quantity <= 0:
        return Decimal(0)
    if mode == RecurringPrice.TiersMode.VOLUME:
        for tier in tiers:
            up_to = tier.get("up_to")
            if up_to is None or quantity <= int(up_to):
                return _decimal(tier.get("unit_amount")) * quantity + _decimal(tier.get("flat_amount"))
        return Decimal(0)
    total, floor = Decimal(0), 0
    for tier in tiers:
        up_to = tier.get("up_to")
        ceiling = quantity if up_to is None else min(quantity, int(up_to))
        units = ceiling - floor
        if units <= 0:
            break
        total += _decimal(tier.get("unit_amount")) * units + _decimal(tier.get("flat_amount"))
        floor = ceiling
    return total


def price_interval_amount(price: RecurringPrice, quantity: int) -> Decimal:
    """What one billing interval of a licensed price costs for `quantity` (seats, units), in the smallest unit:
    per unit, per package (`transform_quantity`), or by tiers."""
    units = quantity
    if price.transform_divide_by:
        exact = Decimal(quantity) / price.transform_divide_by
        units = math.floor(exact) if price.transform_round == "down" else math.ceil(exact)
    if price.billing_scheme == RecurringPrice.BillingScheme.TIERED:
        return _tiered_amount(price.tiers, price.tiers_mode, units)
    unit = price.amount_decimal if price.amount_decimal is not None else Decimal(price.amount_cents)
    return unit * units


def _last_billed(subscription: Subscription) -> dict[str, int]:
    """For each price, what the subscription's latest invoice billing it charged (a metered price's usage)."""
    if subscription.pk is None:
        return {}
    invoices = Invoice.objects.filter(
        Q(subscription=subscription) | Q(stripe_subscription_id=subscription.stripe_subscription_id or "-")
    ).exclude(status__in=["draft", "void"])
    found: dict[str, int] = {}
    latest = invoices.order_by("-created_at_stripe", "-pk").values_list("line_amounts", flat=True)
    for amounts in latest[:BILLED_INVOICES_READ]:
        for price_id, amount in (amounts or {}).items():
            found.setdefault(str(price_id), int(amount))
    return found


def _billed_from_invoices(price: RecurringPrice) -> bool:
    """A metered price, or a tiered one whose tiers Stripe did not send (they come only when expanded): valued
    by what the latest invoice billed for it."""
    if price.usage_type == RecurringPrice.UsageType.METERED:
        return True
    return price.billing_scheme == RecurringPrice.BillingScheme.TIERED and not price.tiers


def _price_monthly(price: RecurringPrice, quantity: int, billed: Mapping[str, int]) -> Decimal:
    if _billed_from_invoices(price):
        amount = Decimal(billed.get(price.stripe_price_id or "", 0))
        return monthly_amount(
            amount_cents=amount, interval=price.interval, interval_count=price.interval_count, quantity=1
        )
    return monthly_amount(
        amount_cents=price_interval_amount(price, quantity),
        interval=price.interval,
        interval_count=price.interval_count,
        quantity=1,
    )


@dataclass(frozen=True)
class DiscountTerms:
    """What one discount takes off: a percentage, or a fixed amount per invoice in `currency`; and for how long."""

    coupon_id: str
    percent_off: Decimal | None
    amount_off: int | None
    currency: str
    duration: str


def _coupon_terms(coupon: Coupon) -> DiscountTerms:
    return DiscountTerms(
        coupon_id=coupon.stripe_coupon_id,
        percent_off=coupon.percent_off,
        amount_off=coupon.amount_off_cents,
        currency=coupon.currency,
        duration=coupon.duration,
    )


def _stated_discount_terms(subscription: Subscription) -> list[DiscountTerms]:
    """The discount a subscription's own fields state."""
    if subscription.discount_percent is None and not subscription.discount_amount_cents:
        return []
    return [
        DiscountTerms(
            coupon_id=subscription.coupon_id,
            percent_off=subscription.discount_percent,
            amount_off=subscription.discount_amount_cents,
            currency=subscription.currency or subscription.plan.currency,
            duration=subscription.discount_duration,
        )
    ]


def subscription_discount_terms(subscription: Subscription) -> list[DiscountTerms]:
    """The discounts that apply to a subscription, valued from the coupons behind them (no API call).

    A Stripe subscription names its discounts by id (`discount_ids`); each is looked up among the mirrored
    discounts, and its coupon among the mirrored coupons — whatever is not known yet is left out until it
    arrives. Without discounts of its own, a customer-wide discount of its Stripe customer applies. A
    subscription no Stripe payload wrote (entered by hand, generated demo data, or mirrored before discounts
    were) carries its discount in its own fields.
    """
    if not subscription.stripe_state:
        return _stated_discount_terms(subscription)
    discounts: list[Discount]
    if subscription.discount_ids:
        by_id = {
            d.stripe_discount_id: d
            for d in Discount.objects.filter(stripe_discount_id__in=subscription.discount_ids, removed_at=None)
        }
        discounts = [by_id[i] for i in subscription.discount_ids if i in by_id]
    else:
        stripe_customer_id = subscription.customer.stripe_customer_id or ""
        discounts = list(
            Discount.objects.filter(
                stripe_customer_id=stripe_customer_id, stripe_subscription_id="", removed_at=None
            ).exclude(stripe_customer_id="")
        )
    coupons = {
        c.stripe_coupon_id: c for c in Coupon.objects.filter(stripe_coupon_id__in=[d.coupon_id for d in discounts])
    }
    return [_coupon_terms(coupons[d.coupon_id]) for d in discounts if d.coupon_id in coupons]


def subscription_mrr_amount(subscription: Subscription, terms: Iterable[DiscountTerms] | None = None) -> int:
    """Normalised MRR of one subscription in the smallest unit of its own currency.

    Counts only active and past-due subscriptions whose collection is not paused; trials and free prices count
    zero. Each item (plan and add-ons) is one interval's price for its quantity — per unit, per package or by
    its tiers; a metered price (or a tiered one whose tiers are unknown) is what the latest invoice billed for
    it — normalised per month. Only
    `forever` discounts reduce MRR (a temporary one does not change the recurring run-rate, as Stripe counts
    it), in Stripe's order: a percentage of what is left, or a fixed amount per invoice (per billing interval
    of the plan) when the coupon is in the subscription's currency. A 100% discount makes it zero.
    """
    if subscription.status not in MRR_STATUSES or subscription.pause_resumes_at is not None:
        return 0
    plan = subscription.plan
    items = list(subscription.add_on_items.select_related("add_on")) if subscription.pk is not None else []
    prices: list[RecurringPrice] = [plan, *(item.add_on for item in items)]
    billed = _last_billed(subscription) if any(_billed_from_invoices(p) for p in prices) else {}
    gross = _price_monthly(plan, subscription.quantity, billed)
    for item in items:
        gross += _price_monthly(item.add_on, item.quantity, billed)
    currency = (subscription.currency or plan.currency).lower()
    for term in subscription_discount_terms(subscription) if terms is None else terms:
        if term.duration != Subscription.DiscountDuration.FOREVER:
            continue
        if term.percent_off is not None:
            gross -= gross * term.percent_off / 100
        elif term.amount_off and term.currency.lower() == currency:
            gross -= monthly_amount(
                amount_cents=term.amount_off, interval=plan.interval, interval_count=plan.interval_count, quantity=1
            )
    return max(0, int(gross.quantize(Decimal(1), rounding=ROUND_HALF_UP)))


def subscription_mrr_cents(subscription: Subscription, convert: Conversion | None = None) -> int | None:
    """A subscription's MRR in hundredths of the workspace currency, or None when its currency has no rate."""
    amount = subscription_mrr_amount(subscription)
    currency = subscription.currency or subscription.plan.currency
    return (convert or conversion()).to_cents(amount, currency)


def subscription_refresh_mrr(*, subscription: Subscription, convert: Conversion | None = None) -> int | None:
    """Recompute and store a subscription's MRR (own currency and converted) and its customer's total; returns
    the converted MRR."""
    subscription.mrr_amount = subscription_mrr_amount(subscription)
    subscription.mrr_cents = (convert or conversion()).to_cents(
        subscription.mrr_amount, subscription.currency or subscription.plan.currency
    )
    subscription.save(update_fields=["mrr_amount", "mrr_cents", "updated_at"])
    customer_refresh_mrr(customer_ids=[subscription.customer_id])
    return subscription.mrr_cents


def customer_refresh_mrr(*, customer_ids: list[int]) -> int:
    """Set each listed customer's MRR to the sum of their subscriptions' converted MRR, in one UPDATE — or to
    empty when one of them bills in a currency without a rate (a part that cannot be added is never dropped
    silently). Returns rows updated."""
    total = (
        Subscription.objects.filter(customer_id=OuterRef("pk"))
        .values("customer_id")
        .annotate(total=Sum("mrr_cents"))
        .values("total")
    )
    unconvertible = Subscription.objects.filter(customer_id=OuterRef("pk"), mrr_amount__gt=0, mrr_cents__isnull=True)
    customers = Customer.objects.filter(pk__in=customer_ids)
    updated = customers.exclude(Exists(unconvertible)).update(mrr_cents=Coalesce(Subquery(total), 0))
    return updated + customers.filter(Exists(unconvertible)).update(mrr_cents=None)


def mrr_by_unconverted_currency() -> dict[str, int]:
    """MRR that cannot be reported in the workspace currency, per currency (smallest units): shown apart."""
    rows = (
        Subscription.objects.filter(mrr_amount__gt=0, mrr_cents__isnull=True)
        .order_by()
        .values_list("currency")
        .annotate(total=Sum("mrr_amount"))
    )
    return {currency: int(total) for currency, total in rows}


@transaction.atomic
def subscriptions_reconvert(*, currencies: Iterable[str] | None = None, chunk: int = 1000) -> set[int]:
    """After a rate or the workspace currency changed: convert the stored MRR of the subscriptions in these
    currencies (all when None) again, and their customers' totals. Returns the customers whose MRR changed."""
    convert = conversion()
    subscriptions = Subscription.objects.select_related("plan").order_by("pk")
    if currencies is not None:
        subscriptions = subscriptions.filter(currency__in=[c.lower() for c in currencies])
    changed: set[int] = set()
    after = 0
    while True:
        batch = list(subscriptions.filter(pk__gt=after)[:chunk])
        if not batch:
            break
        dirty = []
        for subscription in batch:
            cents = convert.to_cents(subscription.mrr_amount, subscription.currency or subscription.plan.currency)
            if cents != subscription.mrr_cents:
                subscription.mrr_cents = cents
                dirty.append(subscription)
                changed.add(subscription.customer_id)
        Subscription.objects.bulk_update(dirty, ["mrr_cents"])
        after = batch[-1].pk
    if changed:
        customer_refresh_mrr(customer_ids=sorted(changed))
    return changed
