"""Mirroring Stripe: customers, catalogue, subscriptions and charges, with the lifecycle events they imply.

`stripe_event_apply` takes one Stripe event (current API shapes: period fields on subscription items,
coupons under `discounts[].source.coupon`, an invoice's subscription under `parent.subscription_details`)
and brings the models in line with it. State is order-safe: an object is only overwritten by an event (or a
backfilled snapshot) at least as new as the one that wrote it. Lifecycle events (Trial Started, Payment
Failed, Order Completed, ...) go onto the customer's timeline with the Stripe event id in their message id,
so applying an event twice never tells the story twice. Backfill (integrations.stripe_sync) calls the same
`*_upsert` functions with API snapshots.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from audiences.ingestion import IncomingMessage, messages_ingest
from audiences.models import AnonymousId, Customer, Source
from audiences.services import source_create
from integrations.destinations import Outbound, OutboundKind, outbound_emit
from trials.models import (
    AddOn,
    Charge,
    Coupon,
    Invoice,
    Plan,
    Product,
    StripeCustomer,
    Subscription,
    SubscriptionAddOn,
)
from trials.services import subscription_mrr_cents

STRIPE_SOURCE_NAME = "Stripe"
SPEND_TIERS = [(0, "none"), (1, "low"), (100_00, "medium"), (1_000_00, "high")]  # lifetime value in cents


# Fetches the current state of a Stripe object ("subscription", id) through the API, or None.
Refetch = Callable[[str, str], Mapping[str, Any] | None]


class CustomerNotLinked(Exception):
    """The event belongs to a Stripe customer not linked to any profile yet: it waits to be replayed."""

    def __init__(self, stripe_customer_id: str) -> None:
        super().__init__(f"Stripe customer {stripe_customer_id} is not linked to a profile")
        self.stripe_customer_id = stripe_customer_id


def _time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _id(value: Any) -> str:
    """An expandable field's id, whether Stripe sent the id or the expanded object."""
    if isinstance(value, Mapping):
        return str(value.get("id", ""))
    return str(value or "")


def stripe_source() -> Source:
    """The built-in source that billing events are recorded under (created on first use; its key is unused)."""
    source = Source.objects.filter(kind=Source.Kind.STRIPE).order_by("pk").first()
    if source is None:
        taken = Source.objects.filter(name=STRIPE_SOURCE_NAME).exists()
        name = f"{STRIPE_SOURCE_NAME} (billing)" if taken else STRIPE_SOURCE_NAME
        source, _ = source_create(name=name, kind=Source.Kind.STRIPE)
    return source


# --- customers -------------------------------------------------------------------------------------------


def _link_candidate(obj: Mapping[str, Any]) -> tuple[Customer | None, str, str]:
    """(profile, method, reason): the profile a Stripe customer belongs to, or None with why not."""
    stripe_id = str(obj["id"])
    by_stripe_id = Customer.objects.filter(stripe_customer_id=stripe_id).first()
    if by_stripe_id is not None:
        return by_stripe_id, StripeCustomer.LinkMethod.STRIPE_ID, ""
    email = str(obj.get("email") or "").strip().lower()
    by_email: Customer | None = None
    if email:
        matches = list(Customer.objects.filter(email=email)[:2])
        if len(matches) > 1:
            return None, "", f"{len(matches)}+ profiles share the email {email}"
        by_email = matches[0] if matches else None
    user_id = str((obj.get("metadata") or {}).get("user_id") or "")
    by_user_id = Customer.objects.filter(user_id=user_id).first() if user_id else None
    if by_email and by_user_id and by_email.pk != by_user_id.pk:
        return None, "", f"email points at profile {by_email.pk}, metadata.user_id at profile {by_user_id.pk}"
    chosen, method = (
        (by_email, StripeCustomer.LinkMethod.EMAIL) if by_email else (by_user_id, StripeCustomer.LinkMethod.USER_ID)
    )
    if chosen is None:
        return None, "", "no profile with this email or metadata.user_id"
    if chosen.stripe_customer_id and chosen.stripe_customer_id != stripe_id:
        return None, "", f"profile {chosen.pk} is already linked to {chosen.stripe_customer_id}"
    return chosen, method, ""


def stripe_customer_link(*, stripe_customer: StripeCustomer, customer: Customer, method: str) -> None:
    """Link a Stripe customer to a profile: the profile keeps the Stripe id and answers to it from now on."""
    stripe_customer.customer, stripe_customer.link_method, stripe_customer.unlinked_reason = customer, method, ""
    stripe_customer.save(update_fields=["customer", "link_method", "unlinked_reason", "updated_at"])
    Customer.objects.filter(pk=customer.pk).update(stripe_customer_id=stripe_customer.stripe_customer_id)
    customer.stripe_customer_id = stripe_customer.stripe_customer_id
    AnonymousId.objects.bulk_create(
        [AnonymousId(anonymous_id=f"stripe:{stripe_customer.stripe_customer_id}", customer=customer)],
        ignore_conflicts=True,
    )
    if not customer.email and stripe_customer.email:
        Customer.objects.filter(pk=customer.pk).update(email=stripe_customer.email)


def customer_upsert(obj: Mapping[str, Any], *, as_of: datetime) -> StripeCustomer:
    """Mirror a Stripe customer and link it to a profile when the evidence is unambiguous."""
    stripe_customer, _ = StripeCustomer.objects.get_or_create(stripe_customer_id=str(obj["id"]))
    if stripe_customer.stripe_state_at is None or as_of >= stripe_customer.stripe_state_at:
        stripe_customer.email = str(obj.get("email") or "").strip().lower()[:254]
        stripe_customer.name = str(obj.get("name") or "")[:255]
        stripe_customer.metadata = dict(obj.get("metadata") or {})
        stripe_customer.deleted = bool(obj.get("deleted"))
        stripe_customer.stripe_state_at = as_of
        stripe_customer.save()
    if stripe_customer.customer_id is None:
        candidate, method, reason = _link_candidate(obj)
        if candidate is not None:
            stripe_customer_link(stripe_customer=stripe_customer, customer=candidate, method=method)
        elif stripe_customer.unlinked_reason != reason:
            stripe_customer.unlinked_reason = reason
            stripe_customer.save(update_fields=["unlinked_reason", "updated_at"])
    return stripe_customer


def _linked_customer(stripe_customer_id: str) -> Customer:
    stripe_customer = (
        StripeCustomer.objects.select_related("customer").filter(stripe_customer_id=stripe_customer_id).first()
    )
    if stripe_customer is None:
        stripe_customer = customer_upsert({"id": stripe_customer_id}, as_of=datetime.min.replace(tzinfo=UTC))
    if stripe_customer.customer is None:
        raise CustomerNotLinked(stripe_customer_id)
    return stripe_customer.customer


# --- catalogue -------------------------------------------------------------------------------------------


def product_upsert(obj: Mapping[str, Any]) -> Product:
    product, _ = Product.objects.update_or_create(
        stripe_product_id=str(obj["id"]),
        defaults={
            "name": str(obj.get("name") or obj["id"])[:255],
            "description": str(obj.get("description") or ""),
            "active": bool(obj.get("active", True)),
            "metadata": dict(obj.get("metadata") or {}),
        },
    )
    return product


def _price_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    recurring = obj.get("recurring") or {}
    return {
        "name": str(obj.get("nickname") or obj.get("lookup_key") or obj["id"])[:255],
        "amount_cents": int(obj.get("unit_amount") or 0),
        "currency": str(obj.get("currency") or "usd"),
        "interval": str(recurring.get("interval") or "month"),
        "interval_count": int(recurring.get("interval_count") or 1),
        "usage_type": str(recurring.get("usage_type") or "licensed"),
        "active": bool(obj.get("active", True)),
    }


def _product_for(price: Mapping[str, Any]) -> Product:
    product = price.get("product")
    if isinstance(product, Mapping):
        return product_upsert(product)
    existing = Product.objects.filter(stripe_product_id=str(product)).first()
    return existing or Product.objects.create(stripe_product_id=str(product), name=str(product))


def plan_upsert(price: Mapping[str, Any]) -> Plan:
    plan, _ = Plan.objects.update_or_create(
        stripe_price_id=str(price["id"]), defaults={**_price_fields(price), "product": _product_for(price)}
    )
    return plan


def add_on_upsert(price: Mapping[str, Any]) -> AddOn:
    add_on, _ = AddOn.objects.update_or_create(
        stripe_price_id=str(price["id"]), defaults={**_price_fields(price), "product": _product_for(price)}
    )
    return add_on


def price_upsert(price: Mapping[str, Any]) -> None:
    """A price event updates whichever catalogue entry uses it (plan or add-on); new prices become plans."""
    if AddOn.objects.filter(stripe_price_id=str(price["id"])).exists():
        add_on_upsert(price)
    elif price.get("type", "recurring") == "recurring":
        plan_upsert(price)


def coupon_upsert(obj: Mapping[str, Any]) -> Coupon:
    coupon, _ = Coupon.objects.update_or_create(
        stripe_coupon_id=str(obj["id"]),
        defaults={
            "name": str(obj.get("name") or "")[:255],
            "percent_off": Decimal(str(obj["percent_off"])) if obj.get("percent_off") is not None else None,
            "amount_off_cents": obj.get("amount_off"),
            "currency": str(obj.get("currency") or ""),
            "duration": str(obj.get("duration") or ""),
            "duration_in_months": obj.get("duration_in_months"),
        },
    )
    return coupon


# --- subscriptions ---------------------------------------------------------------------------------------


@dataclass
class SubscriptionChange:
    """What an upsert changed, for the lifecycle events."""

    subscription: Subscription
    applied: bool = True
    previous_plan: Plan | None = None
    previous_mrr_cents: int = 0


def _coupon_of(discounts: Any) -> Coupon | None:
    for discount in discounts or []:
        if not isinstance(discount, Mapping):
            continue  # an unexpanded id: the discount's coupon is unknown from the payload alone
        source = discount.get("source") or {}
        coupon = source.get("coupon") if isinstance(source, Mapping) else None
        if coupon is None:
            coupon = discount.get("coupon")  # pre-2025 shape
        if isinstance(coupon, Mapping):
            return coupon_upsert(coupon)
        if coupon:
            return Coupon.objects.filter(stripe_coupon_id=str(coupon)).first()
    return None


def _needs_refetch(obj: Mapping[str, Any], existing: Subscription | None, as_of: datetime) -> bool:
    """When the payload alone may mislead: a discount we cannot value, or an event from the same second as
    the stored state (Stripe's order within a second is unknown)."""
    unknown_discount = any(
        not isinstance(d, Mapping) and not Coupon.objects.filter(stripe_coupon_id=str(d)).exists()
        for d in obj.get("discounts") or []
    )
    same_second = existing is not None and existing.stripe_state_at == as_of
    return unknown_discount or same_second


def subscription_upsert(
    obj: Mapping[str, Any], *, as_of: datetime, refetch: Refetch | None = None
) -> SubscriptionChange:
    """Mirror a Stripe subscription (items → plan and add-ons, discount, trial, pause, cancellation, periods).

    With `refetch` (an API key is configured), a payload that may mislead is replaced by the current object.
    """
    customer = _linked_customer(_id(obj.get("customer")))
    existing = Subscription.objects.select_related("plan").filter(stripe_subscription_id=str(obj["id"])).first()
    if refetch is not None and _needs_refetch(obj, existing, as_of):
        fresh = refetch("subscription", str(obj["id"]))
        if fresh is not None:
            obj, as_of = fresh, max(as_of, timezone.now())
    items = list((obj.get("items") or {}).get("data") or [])
    change = SubscriptionChange(subscription=existing or Subscription())
    if existing is not None:
        change.previous_plan, change.previous_mrr_cents = existing.plan, existing.mrr_cents
        if existing.stripe_state_at and as_of < existing.stripe_state_at:
            change.applied = False  # an older event arrived late: newer state stays
            return change
    if not items:
        raise ValueError(f"subscription {obj['id']} has no items")
    main = items[0]
    subscription = change.subscription
    subscription.stripe_subscription_id = str(obj["id"])
    subscription.customer = customer
    subscription.plan = plan_upsert(main["price"])
    subscription.status = str(obj["status"])
    subscription.quantity = int(main.get("quantity") or 1)
    subscription.started_at = _time(obj.get("start_date") or obj.get("created")) or as_of
    subscription.trial_start, subscription.trial_end = _time(obj.get("trial_start")), _time(obj.get("trial_end"))
    subscription.current_period_start = _time(main.get("current_period_start"))
    subscription.current_period_end = _time(main.get("current_period_end"))
    subscription.cancel_at_period_end = bool(obj.get("cancel_at_period_end"))
    subscription.canceled_at, subscription.ended_at = _time(obj.get("canceled_at")), _time(obj.get("ended_at"))
    pause = obj.get("pause_collection") or {}
    subscription.pause_resumes_at = _time(pause.get("resumes_at")) if pause else None
    if pause and not pause.get("resumes_at"):
        subscription.pause_resumes_at = datetime.max.replace(tzinfo=UTC)  # paused with no end date
    subscription.cancellation_details = {k: v for k, v in (obj.get("cancellation_details") or {}).items() if v}
    coupon = _coupon_of(obj.get("discounts"))
    subscription.coupon_id = coupon.stripe_coupon_id if coupon else ""
    subscription.discount_percent = coupon.percent_off if coupon else None
    subscription.discount_amount_cents = coupon.amount_off_cents if coupon else None
    subscription.discount_duration = coupon.duration if coupon else ""
    subscription.metadata = dict(obj.get("metadata") or {})
    subscription.stripe_state_at = as_of
    subscription.save()
    wanted = {}
    for item in items[1:]:
        add_on = add_on_upsert(item["price"])
        wanted[add_on.pk] = (add_on, int(item.get("quantity") or 1), str(item.get("id") or ""))
    SubscriptionAddOn.objects.filter(subscription=subscription).exclude(add_on_id__in=list(wanted)).delete()
    for add_on, quantity, item_id in wanted.values():
        SubscriptionAddOn.objects.update_or_create(
            subscription=subscription, add_on=add_on, defaults={"quantity": quantity, "stripe_item_id": item_id or None}
        )
    subscription.mrr_cents = subscription_mrr_cents(subscription)
    subscription.save(update_fields=["mrr_cents"])
    # Invoices that arrived before their subscription count for it now.
    if Invoice.objects.filter(stripe_subscription_id=subscription.stripe_subscription_id, subscription=None).update(
        subscription=subscription
    ):
        subscription_paid_refresh([subscription.pk])
    return change


# --- invoices --------------------------------------------------------------------------------------------


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


def invoice_upsert(obj: Mapping[str, Any]) -> Invoice:
    """Mirror an invoice and its subscription's lifetime value. What was paid only grows and "paid" is final, so a
    late, older snapshot cannot undo a payment."""
    customer = _linked_customer(_id(obj.get("customer")))
    stripe_subscription_id = _invoice_subscription_id(obj)
    existing = Invoice.objects.filter(stripe_invoice_id=str(obj["id"])).first()
    amount = int(obj.get("amount_paid") or 0)
    status = str(obj.get("status") or "")
    if existing is not None:
        amount = max(amount, existing.amount_paid_cents)
        status = "paid" if existing.status == "paid" else status
    subscription = Subscription.objects.filter(stripe_subscription_id=stripe_subscription_id).first()
    invoice, _ = Invoice.objects.update_or_create(
        stripe_invoice_id=str(obj["id"]),
        defaults={
            "customer": customer,
            "stripe_subscription_id": stripe_subscription_id,
            "subscription": subscription,
            "status": status,
            "amount_paid_cents": amount,
            "currency": str(obj.get("currency") or "usd"),
            "created_at_stripe": _time(obj.get("created")) or timezone.now(),
        },
    )
    if subscription is not None:
        subscription_paid_refresh([subscription.pk])
    return invoice


# --- charges ---------------------------------------------------------------------------------------------


def charge_upsert(obj: Mapping[str, Any]) -> Charge:
    """Mirror a charge. Refunds and disputes only ever grow, so a late, older snapshot cannot shrink them."""
    customer = _linked_customer(_id(obj.get("customer")))
    existing = Charge.objects.filter(stripe_charge_id=str(obj["id"])).first()
    refunded = int(obj.get("amount_refunded") or 0)
    disputed = bool(obj.get("disputed"))
    if existing is not None:
        refunded, disputed = max(refunded, existing.amount_refunded_cents), disputed or existing.disputed
    charge, _ = Charge.objects.update_or_create(
        stripe_charge_id=str(obj["id"]),
        defaults={
            "customer": customer,
            "amount_cents": int(obj.get("amount") or 0),
            "amount_refunded_cents": refunded,
            "currency": str(obj.get("currency") or "usd"),
            "status": str(obj.get("status") or ""),
            "paid": bool(obj.get("paid")),
            "disputed": disputed,
            "failure_message": str(obj.get("failure_message") or "")[:500],
            "charged_at": _time(obj.get("created")) or timezone.now(),
        },
    )
    return charge


# --- traits ----------------------------------------------------------------------------------------------


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
    mrr_cents = sum(s.mrr_cents for s in subscriptions)
    delinquent = any(s.status in (Subscription.Status.PAST_DUE, Subscription.Status.UNPAID) for s in subscriptions)
    next_billing = None
    billable = (Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE, Subscription.Status.TRIALING)
    if current and current.status in billable and not current.cancel_at_period_end:
        trialing = current.status == Subscription.Status.TRIALING
        next_billing = current.trial_end if trialing else current.current_period_end
    traits: dict[str, Any] = {
        "mrr": round(mrr_cents / 100, 2),
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
    customer.mrr_cents, customer.ltv_cents, customer.subscriber_status = max(mrr_cents, 0), ltv_cents, status
    customer.save(update_fields=["traits", "mrr_cents", "ltv_cents", "subscriber_status", "updated_at"])
    return traits


# --- lifecycle events ------------------------------------------------------------------------------------


@dataclass
class _Story:
    """The lifecycle events one Stripe event tells, recorded together at the end."""

    event: Mapping[str, Any]
    customer: Customer | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def tell(self, name: str, **properties: Any) -> None:
        self.calls.append((name, {k: v for k, v in properties.items() if v is not None}))

    def record(self) -> None:
        if self.customer is None or not self.calls:
            return
        created = _time(self.event["created"]) or timezone.now()
        now = timezone.now()
        messages = [
            IncomingMessage(
                type="track",
                message_id=f"{self.event['id']}:{index}"[:100],
                user_id=self.customer.user_id,
                anonymous_id=f"stripe:{self.customer.stripe_customer_id}" if self.customer.stripe_customer_id else None,
                name=name,
                properties={**properties, "stripe_event_id": self.event["id"]},
                context={"integration": {"name": "stripe"}},
                timestamp=created,
                received_at=now,
            )
            for index, (name, properties) in enumerate(self.calls)
        ]
        messages_ingest(source=stripe_source(), messages=messages)
        outbound_emit(
            [
                Outbound(
                    kind=OutboundKind.BILLING_EVENT,
                    customer_id=self.customer.pk,
                    idempotency_key=f"billing:{message.message_id}"[:90],
                    occurred_at=created,
                    data={"event": message.name, "properties": message.properties},
                )
                for message in messages
            ]
        )


def _plan_label(plan: Plan | None) -> str | None:
    return f"{plan.product.name} · {plan.name}" if plan is not None else None


def _campaigns(customer: Customer) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """First- and last-touch campaign of the customer's earlier events (their `context.campaign`)."""
    touched = customer.events.filter(context__has_key="campaign").order_by("timestamp", "id")
    first = touched.values_list("context", flat=True).first()
    last = touched.order_by("-timestamp", "-id").values_list("context", flat=True).first()
    return (first or {}).get("campaign"), (last or {}).get("campaign")


def _subscription_story(
    story: _Story, event_type: str, change: SubscriptionChange, previous: Mapping[str, Any]
) -> None:
    subscription = change.subscription
    plan = _plan_label(subscription.plan)
    if event_type == "customer.subscription.created":
        if subscription.status == Subscription.Status.TRIALING:
            days = (
                (subscription.trial_end - subscription.trial_start).days
                if subscription.trial_end and subscription.trial_start
                else None
            )
            story.tell(
                "Trial Started",
                subscription_id=subscription.stripe_subscription_id,
                plan=plan,
                trial_end=subscription.trial_end.isoformat() if subscription.trial_end else None,
                trial_days=days,
            )
        else:
            story.tell(
                "Subscription Started",
                subscription_id=subscription.stripe_subscription_id,
                plan=plan,
                mrr=round(subscription.mrr_cents / 100, 2),
                status=subscription.status,
            )
    elif event_type == "customer.subscription.trial_will_end":
        story.tell(
            "Trial Ending",
            subscription_id=subscription.stripe_subscription_id,
            plan=plan,
            trial_end=subscription.trial_end.isoformat() if subscription.trial_end else None,
        )
    elif event_type == "customer.subscription.deleted":
        details = subscription.cancellation_details
        story.tell(
            "Subscription Canceled",
            subscription_id=subscription.stripe_subscription_id,
            plan=plan,
            reason=details.get("reason"),
            feedback=details.get("feedback"),
            comment=details.get("comment"),
            mrr_lost=round(change.previous_mrr_cents / 100, 2),
        )
    elif event_type in ("customer.subscription.paused", "customer.subscription.resumed"):
        story.tell(
            "Subscription Paused" if event_type.endswith("paused") else "Subscription Resumed",
            subscription_id=subscription.stripe_subscription_id,
            plan=plan,
        )
    elif event_type == "customer.subscription.updated":
        items_changed = "items" in previous or "plan" in previous or "quantity" in previous
        old_plan = change.previous_plan
        if (
            items_changed
            and old_plan is not None
            and (old_plan.pk != subscription.plan.pk or change.previous_mrr_cents != subscription.mrr_cents)
        ):
            delta = subscription.mrr_cents - change.previous_mrr_cents
            story.tell(
                "Subscription Changed",
                subscription_id=subscription.stripe_subscription_id,
                from_plan=_plan_label(old_plan),
                to_plan=plan,
                mrr_delta=round(delta / 100, 2),
                direction="upgrade" if delta > 0 else "downgrade" if delta < 0 else "lateral",
            )
        if "pause_collection" in previous:
            paused_now = subscription.pause_resumes_at is not None
            if paused_now and not previous.get("pause_collection"):
                story.tell("Subscription Paused", subscription_id=subscription.stripe_subscription_id, plan=plan)
            elif not paused_now and previous.get("pause_collection"):
                story.tell("Subscription Resumed", subscription_id=subscription.stripe_subscription_id, plan=plan)


def _invoice_subscription_id(invoice: Mapping[str, Any]) -> str:
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    return _id(details.get("subscription")) or _id(invoice.get("subscription"))


def _invoice_story(story: _Story, event_type: str, invoice: Mapping[str, Any], customer: Customer) -> None:
    amount = int(invoice.get("amount_paid") or invoice.get("amount_due") or 0)
    currency = str(invoice.get("currency") or "usd")
    subscription_id = _invoice_subscription_id(invoice)
    if event_type == "invoice.payment_failed":
        error = invoice.get("last_finalization_error") or {}
        story.tell(
            "Payment Failed",
            invoice_id=invoice["id"],
            subscription_id=subscription_id or None,
            amount=round(int(invoice.get("amount_due") or 0) / 100, 2),
            currency=currency,
            attempt_count=invoice.get("attempt_count"),
            reason=error.get("message") or error.get("code") or customer.traits.get("last_payment_failure"),
            next_attempt=_iso(_time(invoice.get("next_payment_attempt"))),
        )
        return
    if amount <= 0:
        return
    earlier_failure = customer.events.filter(name="Payment Failed", properties__invoice_id=invoice["id"]).exists()
    if earlier_failure:
        story.tell(
            "Payment Recovered",
            invoice_id=invoice["id"],
            subscription_id=subscription_id or None,
            amount=round(amount / 100, 2),
            currency=currency,
        )
    subscription = (
        Subscription.objects.select_related("plan__product").filter(stripe_subscription_id=subscription_id).first()
    )
    if subscription is not None and subscription.trial_end is not None:
        converted_before = customer.events.filter(
            name="Trial Converted", properties__subscription_id=subscription_id
        ).exists()
        if not converted_before:
            story.tell(
                "Trial Converted",
                subscription_id=subscription_id,
                plan=_plan_label(subscription.plan),
                amount=round(amount / 100, 2),
                currency=currency,
            )


def _charge_story(story: _Story, event_type: str, charge: Mapping[str, Any], customer: Customer) -> None:
    currency = str(charge.get("currency") or "usd")
    if event_type == "charge.succeeded":
        first, last = _campaigns(customer)
        story.tell(
            "Order Completed",
            order_id=charge["id"],
            total=round(int(charge.get("amount") or 0) / 100, 2),
            revenue=round(int(charge.get("amount") or 0) / 100, 2),
            currency=currency,
            first_touch_campaign=first,
            last_touch_campaign=last,
        )
    elif event_type == "charge.refunded":
        story.tell(
            "Refund Issued",
            charge_id=charge["id"],
            amount=round(int(charge.get("amount_refunded") or 0) / 100, 2),
            currency=currency,
        )
    elif event_type == "charge.failed":
        customer.traits["last_payment_failure"] = charge.get("failure_message") or charge.get("failure_code")
        Customer.objects.filter(pk=customer.pk).update(traits=customer.traits)


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


def stripe_customer_id_of(event: Mapping[str, Any]) -> str:
    """The Stripe customer an event concerns ('' for catalogue events)."""
    obj = event["data"]["object"]
    if obj.get("object") == "customer":
        return str(obj.get("id", ""))
    return _id(obj.get("customer"))


@transaction.atomic
def stripe_event_apply(event: Mapping[str, Any], *, refetch: Refetch | None = None) -> str:
    """Apply one Stripe event; returns what happened ("applied", "stale", "ignored").

    Raises CustomerNotLinked when the event needs a profile that is not linked yet. `refetch`, when given,
    is used to read an object's current state where the payload alone may mislead.
    """
    event_type = str(event["type"])
    obj = event["data"]["object"]
    previous = event["data"].get("previous_attributes") or {}
    as_of = _time(event["created"]) or timezone.now()
    story = _Story(event=event)
    outcome = "applied"
    if event_type.startswith("customer.") and not event_type.startswith("customer.subscription."):
        customer_upsert(obj, as_of=as_of)
        return outcome
    if event_type.startswith("product."):
        product_upsert(obj)
        return outcome
    if event_type.startswith("price."):
        price_upsert(obj)
        return outcome
    if event_type.startswith("coupon."):
        coupon_upsert(obj)
        return outcome
    if event_type.startswith("customer.subscription."):
        change = subscription_upsert(obj, as_of=as_of, refetch=refetch)
        story.customer = change.subscription.customer
        if not change.applied:
            outcome = "stale"
        _subscription_story(story, event_type, change, previous)
    elif event_type.startswith("invoice."):
        story.customer = _linked_customer(_id(obj.get("customer")))
        invoice_upsert(obj)
        _invoice_story(story, event_type, obj, story.customer)
    elif event_type == "charge.dispute.created":
        charge = Charge.objects.select_related("customer").filter(stripe_charge_id=_id(obj.get("charge"))).first()
        if charge is None:
            return "ignored"
        Charge.objects.filter(pk=charge.pk).update(disputed=True)
        story.customer = charge.customer
        story.tell(
            "Dispute Opened",
            charge_id=charge.stripe_charge_id,
            amount=round(int(obj.get("amount") or 0) / 100, 2),
            currency=str(obj.get("currency") or charge.currency),
            reason=obj.get("reason"),
        )
    elif event_type.startswith("charge."):
        charge_upsert(obj)
        story.customer = _linked_customer(_id(obj.get("customer")))
        _charge_story(story, event_type, obj, story.customer)
    else:
        return "ignored"
    story.record()
    if story.customer is not None:
        customer_billing_refresh(story.customer)
    return outcome
