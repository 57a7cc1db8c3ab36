"""Applying one Stripe event to the mirror: the entry point webhooks, replays and reconcile share.

`stripe_event_apply` takes one Stripe event (current API shapes: period fields on subscription items, coupons
under `discounts[].source.coupon`, an invoice's subscription under `parent.subscription_details`) and brings the
models in line with it through the `*_upsert` functions, which backfill (integrations.stripe.sync) calls with API
snapshots too. State is order-safe: an object is only overwritten by an event (or a backfilled snapshot) at least
as new as the one that wrote it. Then the lifecycle events it tells are recorded and the customer's billing traits
recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from audiences.models import Customer
from integrations.stripe.catalogue import coupon_upsert, discount_upsert, price_upsert, product_upsert
from integrations.stripe.customers import customer_upsert, linked_customer
from integrations.stripe.lifecycle import Story, charge_story, invoice_story, subscription_story, units
from integrations.stripe.models import Charge, Discount
from integrations.stripe.payloads import Refetch, expandable_id, payload_time
from integrations.stripe.payments import charge_upsert, invoice_upsert
from integrations.stripe.subscriptions import subscription_upsert, subscriptions_revalue_for_discounts
from integrations.stripe.traits import customer_billing_refresh

#: The Stripe event types the mirror applies; any other type is accepted by the endpoint and ignored.
HANDLED_TYPES = {
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "product.created",
    "product.updated",
    "price.created",
    "price.updated",
    "coupon.created",
    "coupon.updated",
    "customer.discount.created",
    "customer.discount.updated",
    "customer.discount.deleted",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.trial_will_end",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "charge.succeeded",
    "charge.failed",
    "charge.refunded",
    "charge.dispute.created",
}


def _refresh_customers(customer_ids: set[int]) -> None:
    for customer in Customer.objects.filter(pk__in=customer_ids):
        customer_billing_refresh(customer)


def stripe_customer_id_of(event: Mapping[str, Any]) -> str:
    """The Stripe customer an event concerns ('' for catalogue events)."""
    obj = event["data"]["object"]
    if obj.get("object") == "customer":
        return str(obj.get("id", ""))
    return expandable_id(obj.get("customer"))


@transaction.atomic
def stripe_event_apply(event: Mapping[str, Any], *, refetch: Refetch | None = None) -> str:
    """Apply one Stripe event; returns what happened ("applied", "stale", "ignored").

    Raises CustomerNotLinked when the event needs a profile that is not linked yet. `refetch`, when given,
    is used to read an object's current state where the payload alone may mislead.
    """
    event_type = str(event["type"])
    obj = event["data"]["object"]
    previous = event["data"].get("previous_attributes") or {}
    as_of = payload_time(event["created"]) or timezone.now()
    story = Story(event=event)
    outcome = "applied"
    if event_type.startswith("customer.discount."):
        discount = discount_upsert(obj, as_of=as_of, removed=event_type == "customer.discount.deleted")
        _refresh_customers(subscriptions_revalue_for_discounts([discount]))
        return outcome
    if event_type.startswith("customer.") and not event_type.startswith("customer.subscription."):
        customer_upsert(obj, as_of=as_of)
        return outcome
    if event_type.startswith("product."):
        product_upsert(obj)
        return outcome
    if event_type.startswith("price."):
        price_upsert(obj, refetch=refetch)
        return outcome
    if event_type.startswith("coupon."):
        coupon = coupon_upsert(obj)
        _refresh_customers(
            subscriptions_revalue_for_discounts(list(Discount.objects.filter(coupon_id=coupon.stripe_coupon_id)))
        )
        return outcome
    if event_type.startswith("customer.subscription."):
        change = subscription_upsert(obj, as_of=as_of, refetch=refetch, previous=previous)
        story.customer = change.subscription.customer
        if not change.applied:
            outcome = "stale"
        subscription_story(story, event_type, change, previous)
    elif event_type.startswith("invoice."):
        story.customer = linked_customer(expandable_id(obj.get("customer")))
        invoice_upsert(obj)
        invoice_story(story, event_type, obj, story.customer)
    elif event_type == "charge.dispute.created":
        charge = (
            Charge.objects.select_related("customer").filter(stripe_charge_id=expandable_id(obj.get("charge"))).first()
        )
        if charge is None:
            return "ignored"
        Charge.objects.filter(pk=charge.pk).update(disputed=True)
        story.customer = charge.customer
        story.tell(
            "Dispute Opened",
            charge_id=charge.stripe_charge_id,
            amount=units(int(obj.get("amount") or 0), str(obj.get("currency") or charge.currency)),
            currency=str(obj.get("currency") or charge.currency),
            reason=obj.get("reason"),
        )
    elif event_type.startswith("charge."):
        charge_upsert(obj)
        story.customer = linked_customer(expandable_id(obj.get("customer")))
        charge_story(story, event_type, obj, story.customer)
    else:
        return "ignored"
    story.record()
    if story.customer is not None:
        customer_billing_refresh(story.customer)
    return outcome
