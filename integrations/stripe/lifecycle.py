"""The lifecycle events a Stripe event tells (Trial Started, Payment Failed, Order Completed, ...).

They go onto the customer's timeline under the built-in Stripe source, with the Stripe event id in their message
id so applying an event twice never tells the story twice, and are recorded as billing facts (config.facts) for
whoever subscribes above (outbound destinations).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from audiences.ingestion import IncomingMessage, messages_ingest
from audiences.models import Customer, Source
from audiences.services import source_create
from config.facts import Fact, FactKind, facts_record
from config.money import to_major
from integrations.stripe.models import Plan, Subscription
from integrations.stripe.payloads import invoice_subscription_id, iso_or_none, payload_time
from integrations.stripe.subscriptions import SubscriptionChange

STRIPE_SOURCE_NAME = "Stripe"


def stripe_source() -> Source:
    """The built-in source that billing events are recorded under (created on first use; its key is unused)."""
    source = Source.objects.filter(kind=Source.Kind.STRIPE).order_by("pk").first()
    if source is None:
        taken = Source.objects.filter(name=STRIPE_SOURCE_NAME).exists()
        name = f"{STRIPE_SOURCE_NAME} (billing)" if taken else STRIPE_SOURCE_NAME
        source, _ = source_create(name=name, kind=Source.Kind.STRIPE)
    return source


@dataclass
class Story:
    """The lifecycle events one Stripe event tells, recorded together at the end."""

    event: Mapping[str, Any]
    customer: Customer | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def tell(self, name: str, **properties: Any) -> None:
        self.calls.append((name, {k: v for k, v in properties.items() if v is not None}))

    def record(self) -> None:
        if self.customer is None or not self.calls:
            return
        created = payload_time(self.event["created"]) or timezone.now()
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
        facts_record(
            [
                Fact(
                    kind=FactKind.BILLING_EVENT,
                    customer_id=self.customer.pk,
                    idempotency_key=f"billing:{message.message_id}"[:90],
                    occurred_at=created,
                    data={"event": message.name, "properties": message.properties},
                )
                for message in messages
            ]
        )


def units(amount_minor: int, currency: str) -> float:
    """A Stripe amount as currency units, as events carry it: ¥10,000 stays 10000, 1000 US cents are 10.0."""
    return float(to_major(amount_minor, currency))


def _major(amount_minor: int, subscription: Subscription) -> float:
    return units(amount_minor, subscription.currency or subscription.plan.currency)


def _plan_label(plan: Plan | None) -> str | None:
    return f"{plan.product.name} · {plan.name}" if plan is not None else None


def _campaigns(customer: Customer) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """First- and last-touch campaign of the customer's earlier events (their `context.campaign`)."""
    touched = customer.events.filter(context__has_key="campaign").order_by("timestamp", "id")
    first = touched.values_list("context", flat=True).first()
    last = touched.order_by("-timestamp", "-id").values_list("context", flat=True).first()
    return (first or {}).get("campaign"), (last or {}).get("campaign")


def subscription_story(story: Story, event_type: str, change: SubscriptionChange, previous: Mapping[str, Any]) -> None:
    """The lifecycle events a subscription event tells: trial or subscription started, trial ending, canceled,
    paused or resumed, and plan changes with their MRR delta."""
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
                mrr=_major(subscription.mrr_amount, subscription),
                currency=subscription.currency,
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
            mrr_lost=_major(change.previous_mrr_amount, subscription),
            currency=subscription.currency,
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
            and (old_plan.pk != subscription.plan.pk or change.previous_mrr_amount != subscription.mrr_amount)
        ):
            delta = subscription.mrr_amount - change.previous_mrr_amount
            story.tell(
                "Subscription Changed",
                subscription_id=subscription.stripe_subscription_id,
                from_plan=_plan_label(old_plan),
                to_plan=plan,
                mrr_delta=_major(delta, subscription),
                currency=subscription.currency,
                direction="upgrade" if delta > 0 else "downgrade" if delta < 0 else "lateral",
            )
        if "pause_collection" in previous:
            paused_now = subscription.pause_resumes_at is not None
            if paused_now and not previous.get("pause_collection"):
                story.tell("Subscription Paused", subscription_id=subscription.stripe_subscription_id, plan=plan)
            elif not paused_now and previous.get("pause_collection"):
                story.tell("Subscription Resumed", subscription_id=subscription.stripe_subscription_id, plan=plan)


def invoice_story(story: Story, event_type: str, invoice: Mapping[str, Any], customer: Customer) -> None:
    """The lifecycle events an invoice event tells: a payment failed, recovered, or a trial converted."""
    amount = int(invoice.get("amount_paid") or invoice.get("amount_due") or 0)
    currency = str(invoice.get("currency") or "usd")
    subscription_id = invoice_subscription_id(invoice)
    if event_type == "invoice.payment_failed":
        error = invoice.get("last_finalization_error") or {}
        story.tell(
            "Payment Failed",
            invoice_id=invoice["id"],
            subscription_id=subscription_id or None,
            amount=units(int(invoice.get("amount_due") or 0), currency),
            currency=currency,
            attempt_count=invoice.get("attempt_count"),
            reason=error.get("message") or error.get("code") or customer.traits.get("last_payment_failure"),
            next_attempt=iso_or_none(payload_time(invoice.get("next_payment_attempt"))),
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
            amount=units(amount, currency),
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
                amount=units(amount, currency),
                currency=currency,
            )


def charge_story(story: Story, event_type: str, charge: Mapping[str, Any], customer: Customer) -> None:
    """The lifecycle events a charge event tells (order completed, refund issued); a failed charge keeps its reason
    for the Payment Failed event that follows."""
    currency = str(charge.get("currency") or "usd")
    if event_type == "charge.succeeded":
        first, last = _campaigns(customer)
        story.tell(
            "Order Completed",
            order_id=charge["id"],
            total=units(int(charge.get("amount") or 0), currency),
            revenue=units(int(charge.get("amount") or 0), currency),
            currency=currency,
            first_touch_campaign=first,
            last_touch_campaign=last,
        )
    elif event_type == "charge.refunded":
        story.tell(
            "Refund Issued",
            charge_id=charge["id"],
            amount=units(int(charge.get("amount_refunded") or 0), currency),
            currency=currency,
        )
    elif event_type == "charge.failed":
        customer.traits["last_payment_failure"] = charge.get("failure_message") or charge.get("failure_code")
        Customer.objects.filter(pk=customer.pk).update(traits=customer.traits)
