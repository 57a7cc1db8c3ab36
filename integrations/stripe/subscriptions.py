"""Subscriptions mirrored from Stripe, order-safe, and valued: items, discounts, trial, pause and periods.

An older event never overwrites newer state; events of the same second are ordered from the payloads (their
`previous_attributes` and how far along its life each state is). Every write values the subscription again
(integrations.stripe.mrr) and keeps its lifetime value from its paid invoices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from integrations.stripe.catalogue import add_on_upsert, discount_upsert, plan_upsert
from integrations.stripe.currency import Conversion, conversion
from integrations.stripe.customers import linked_customer
from integrations.stripe.models import Coupon, Discount, Invoice, Plan, Subscription, SubscriptionAddOn
from integrations.stripe.mrr import DiscountTerms, subscription_discount_terms, subscription_mrr_amount
from integrations.stripe.payloads import Refetch, expandable_id, payload_time


def _discount_ids(obj: Mapping[str, Any], as_of: datetime) -> list[str]:
    """A subscription's discounts in Stripe's order, as ids: `discounts` (ids, or objects when expanded, which
    are mirrored) or, in older API versions, the single `discount` object."""
    listed = obj.get("discounts")
    if listed is None and isinstance(obj.get("discount"), Mapping):
        listed = [obj["discount"]]
    ids = []
    for entry in listed or []:
        if isinstance(entry, Mapping):
            ids.append(discount_upsert(entry, as_of=as_of).stripe_discount_id)
        elif entry:
            ids.append(str(entry))
    return ids


@dataclass
class SubscriptionChange:
    """What an upsert changed, for the lifecycle events."""

    subscription: Subscription
    applied: bool = True
    previous_plan: Plan | None = None
    previous_mrr_amount: int = 0  # in the subscription's own currency (smallest unit)


def _unvalued_discounts(discount_ids: list[str]) -> bool:
    """Whether a discount id's coupon is unknown: the discount never arrived, or its coupon did not."""
    if not discount_ids:
        return False
    coupons = dict(
        Discount.objects.filter(stripe_discount_id__in=discount_ids).values_list("stripe_discount_id", "coupon_id")
    )
    wanted = {coupons.get(i, "") for i in discount_ids}
    known = set(Coupon.objects.filter(stripe_coupon_id__in=wanted - {""}).values_list("stripe_coupon_id", flat=True))
    return bool(wanted - known)


# The lifecycle fields whose values order two states of a subscription from the same second.
ORDERING_FIELDS = (
    "status", "items", "discounts", "latest_invoice", "cancel_at_period_end", "canceled_at", "ended_at",
    "pause_collection", "trial_end", "current_period_end",
)  # fmt: skip


STATUS_RANK = {
    "incomplete": 0, "trialing": 1, "active": 2, "past_due": 2, "unpaid": 2, "paused": 2, "canceled": 3,
    "incomplete_expired": 3,
}  # fmt: skip


def _ordering_value(key: str, value: Any) -> Any:
    """A field's value as ordering compares it (ids for expandable fields, items as price and quantity)."""
    if key == "items":
        data = (value or {}).get("data") or [] if isinstance(value, Mapping) else value or []
        return sorted(
            [expandable_id(item.get("price")), int(item.get("quantity") or 0), int(item.get("current_period_end") or 0)]
            for item in data
            if isinstance(item, Mapping)
        )
    if key == "discounts":
        return [expandable_id(d) for d in value or []]
    if key == "latest_invoice":
        return expandable_id(value)
    if key == "pause_collection":
        return dict(value) if isinstance(value, Mapping) else None
    return value


def _ordering_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _ordering_value(key, obj[key]) for key in ORDERING_FIELDS if key in obj}


def _rank(fields: Mapping[str, Any]) -> tuple[int, int, int]:
    """How far along its life a state is: status, then the latest period end, then whether it ended."""
    periods = [row[2] for row in fields.get("items") or []] + [int(fields.get("current_period_end") or 0)]
    return STATUS_RANK.get(str(fields.get("status")), 0), max(periods), int(bool(fields.get("ended_at")))


def _same_second_order(existing: Subscription, obj: Mapping[str, Any], previous: Mapping[str, Any]) -> str:
    """Whether a payload from the same second as the stored state is "later", "earlier" or "unknown", read
    from the payloads alone: an event whose `previous_attributes` are the stored state follows it; one whose
    state is what the stored event's `previous_attributes` left behind precedes it; otherwise the state further
    along its life (status, period, end) is the later one."""
    stored, stored_previous = existing.stripe_state.get("fields", {}), existing.stripe_state.get("previous", {})
    incoming, before = _ordering_fields(obj), _ordering_fields(previous)
    if incoming == stored:
        return "later"  # the same state again: applying it changes nothing
    if before and all(stored.get(k) == v for k, v in before.items()):
        return "later"
    if stored_previous and all(incoming.get(k) == v for k, v in stored_previous.items()):
        return "earlier"
    new_rank, old_rank = _rank(incoming), _rank(stored)
    return "later" if new_rank > old_rank else "earlier" if new_rank < old_rank else "unknown"


def subscription_upsert(
    obj: Mapping[str, Any],
    *,
    as_of: datetime,
    refetch: Refetch | None = None,
    previous: Mapping[str, Any] | None = None,
) -> SubscriptionChange:
    """Mirror a Stripe subscription (items → plan and add-ons, discounts, trial, pause, cancellation, periods).

    Reads the current API shape (periods on items, `discounts`) and the older one (periods on the subscription,
    a single `discount`). An older event never overwrites newer state; one from the same second is ordered
    from the payloads (`previous`: the event's previous_attributes). With `refetch` (an API key is configured),
    a payload that may still mislead — a discount whose coupon is unknown, or a same-second event the payloads
    cannot order — is replaced by the current object.
    """
    customer = linked_customer(expandable_id(obj.get("customer")))
    previous = previous or {}
    existing = Subscription.objects.select_related("plan").filter(stripe_subscription_id=str(obj["id"])).first()
    change = SubscriptionChange(subscription=existing or Subscription())
    if existing is not None:
        change.previous_plan, change.previous_mrr_amount = existing.plan, existing.mrr_amount
    order = "later"
    if existing is not None and existing.stripe_state_at is not None:
        if as_of < existing.stripe_state_at:
            order = "earlier"
        elif as_of == existing.stripe_state_at:
            order = _same_second_order(existing, obj, previous)
    unvalued = _unvalued_discounts([expandable_id(d) for d in obj.get("discounts") or [] if not isinstance(d, Mapping)])
    if refetch is not None and order != "earlier" and (order == "unknown" or unvalued):
        fresh = refetch("subscription", str(obj["id"]))
        if fresh is not None:
            obj, as_of, previous, order = fresh, max(as_of, timezone.now()), {}, "later"
    if order == "earlier":
        change.applied = False  # an older state arrived late: the newer one stays
        return change
    items = list((obj.get("items") or {}).get("data") or [])
    if not items:
        raise ValueError(f"subscription {obj['id']} has no items")
    main = items[0]
    subscription = change.subscription
    subscription.stripe_subscription_id = str(obj["id"])
    subscription.customer = customer
    subscription.plan = plan_upsert(main["price"])
    subscription.currency = str(obj.get("currency") or subscription.plan.currency).lower()
    subscription.status = str(obj["status"])
    subscription.quantity = _quantity(main)
    subscription.started_at = payload_time(obj.get("start_date") or obj.get("created")) or as_of
    subscription.trial_start, subscription.trial_end = (
        payload_time(obj.get("trial_start")),
        payload_time(obj.get("trial_end")),
    )
    subscription.current_period_start = payload_time(
        main.get("current_period_start") or obj.get("current_period_start")
    )
    subscription.current_period_end = payload_time(main.get("current_period_end") or obj.get("current_period_end"))
    subscription.cancel_at_period_end = bool(obj.get("cancel_at_period_end"))
    subscription.canceled_at, subscription.ended_at = (
        payload_time(obj.get("canceled_at")),
        payload_time(obj.get("ended_at")),
    )
    pause = obj.get("pause_collection") or {}
    subscription.pause_resumes_at = payload_time(pause.get("resumes_at")) if pause else None
    if pause and not pause.get("resumes_at"):
        subscription.pause_resumes_at = datetime.max.replace(tzinfo=UTC)  # paused with no end date
    subscription.cancellation_details = {k: v for k, v in (obj.get("cancellation_details") or {}).items() if v}
    subscription.discount_ids = _discount_ids(obj, as_of)
    subscription.metadata = dict(obj.get("metadata") or {})
    subscription.stripe_state_at = as_of
    subscription.stripe_state = {"fields": _ordering_fields(obj), "previous": _ordering_fields(previous)}
    subscription.save()
    # A discount this state no longer lists has ended — unless something newer said otherwise; one it lists and
    # an older state had dropped is running again.
    Discount.objects.filter(stripe_subscription_id=subscription.stripe_subscription_id, removed_at=None).filter(
        Q(stripe_state_at__isnull=True) | Q(stripe_state_at__lte=as_of)
    ).exclude(stripe_discount_id__in=subscription.discount_ids).update(removed_at=as_of)
    Discount.objects.filter(stripe_discount_id__in=subscription.discount_ids, removed_at__lt=as_of).update(
        removed_at=None
    )
    wanted = {}
    for item in items[1:]:
        add_on = add_on_upsert(item["price"])
        wanted[add_on.pk] = (add_on, _quantity(item), str(item.get("id") or ""))
    SubscriptionAddOn.objects.filter(subscription=subscription).exclude(add_on_id__in=list(wanted)).delete()
    for add_on, quantity, item_id in wanted.values():
        SubscriptionAddOn.objects.update_or_create(
            subscription=subscription, add_on=add_on, defaults={"quantity": quantity, "stripe_item_id": item_id or None}
        )
    subscriptions_revalue([subscription])
    # Invoices that arrived before their subscription count for it now.
    if Invoice.objects.filter(stripe_subscription_id=subscription.stripe_subscription_id, subscription=None).update(
        subscription=subscription
    ):
        subscription_paid_refresh([subscription.pk])
        subscriptions_revalue([subscription])
    return change


def _quantity(item: Mapping[str, Any]) -> int:
    """An item's quantity (seats); 0 is a quantity, only a missing one (metered items) counts as 1."""
    quantity = item.get("quantity")
    return int(quantity) if quantity is not None else 1


def subscriptions_revalue(subscriptions: list[Subscription], convert: Conversion | None = None) -> None:
    """Value each subscription's discounts from the mirrored coupons and store its MRR, in its own currency and
    in the workspace's. The first valued discount is what segments see as the subscription's coupon."""
    convert = convert or conversion()
    for subscription in subscriptions:
        terms = subscription_discount_terms(subscription)
        first: DiscountTerms | None = terms[0] if terms else None
        subscription.coupon_id = first.coupon_id if first else ""
        subscription.discount_percent = first.percent_off if first else None
        subscription.discount_amount_cents = first.amount_off if first else None
        subscription.discount_duration = first.duration if first else ""
        subscription.mrr_amount = subscription_mrr_amount(subscription, terms)
        subscription.mrr_cents = convert.to_cents(
            subscription.mrr_amount, subscription.currency or subscription.plan.currency
        )
        subscription.save(
            update_fields=[
                "coupon_id",
                "discount_percent",
                "discount_amount_cents",
                "discount_duration",
                "mrr_amount",
                "mrr_cents",
            ]
        )


def subscriptions_revalue_for_discounts(discounts: list[Discount]) -> set[int]:
    """A discount or coupon arrived: value again the subscriptions it applies to (its own subscription, or
    every subscription of its customer for a customer-wide one). Returns the customers touched."""
    subscription_ids = {d.stripe_subscription_id for d in discounts if d.stripe_subscription_id}
    customer_wide = {d.stripe_customer_id for d in discounts if not d.stripe_subscription_id and d.stripe_customer_id}
    affected = list(
        Subscription.objects.select_related("plan", "customer").filter(
            Q(stripe_subscription_id__in=subscription_ids) | Q(customer__stripe_customer_id__in=customer_wide)
        )
    )
    subscriptions_revalue(affected)
    return {s.customer_id for s in affected}


def subscription_paid_refresh(subscription_ids: list[int]) -> None:
    """Recompute the subscriptions' lifetime value from their paid invoices (one set-based UPDATE)."""
    paid = (
        Invoice.objects.filter(subscription=OuterRef("pk"), status="paid")
        .order_by()
        .values("subscription")
        .annotate(total=Sum("amount_paid_cents"))
        .values("total")
    )
    Subscription.objects.filter(pk__in=subscription_ids).update(paid_cents=Coalesce(Subquery(paid), Value(0)))
