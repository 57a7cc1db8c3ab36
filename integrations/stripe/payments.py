"""Invoices and charges mirrored from Stripe: what was billed and paid, the ground truth of lifetime value.

What was paid, refunded or disputed only grows and "paid" is final, so a late, older snapshot cannot undo a
payment. An invoice keeps what it billed per price (prorations left out), which values metered prices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils import timezone

from integrations.stripe.customers import linked_customer
from integrations.stripe.models import Charge, Invoice, Subscription
from integrations.stripe.payloads import expandable_id, invoice_subscription_id, payload_time
from integrations.stripe.subscriptions import subscription_paid_refresh, subscriptions_revalue


def invoice_upsert(obj: Mapping[str, Any]) -> Invoice:
    """Mirror an invoice and its subscription's lifetime value. What was paid only grows and "paid" is final, so a
    late, older snapshot cannot undo a payment."""
    customer = linked_customer(expandable_id(obj.get("customer")))
    stripe_subscription_id = invoice_subscription_id(obj)
    existing = Invoice.objects.filter(stripe_invoice_id=str(obj["id"])).first()
    amount = int(obj.get("amount_paid") or 0)
    status = str(obj.get("status") or "")
    if existing is not None:
        amount = max(amount, existing.amount_paid_cents)
        status = "paid" if existing.status == "paid" else status
    subscription = (
        Subscription.objects.select_related("plan", "customer")
        .filter(stripe_subscription_id=stripe_subscription_id)
        .first()
    )
    lines = _line_amounts(obj)
    invoice, _ = Invoice.objects.update_or_create(
        stripe_invoice_id=str(obj["id"]),
        defaults={
            "customer": customer,
            "stripe_subscription_id": stripe_subscription_id,
            "subscription": subscription,
            "status": status,
            "amount_paid_cents": amount,
            "currency": str(obj.get("currency") or "usd").lower(),
            "created_at_stripe": payload_time(obj.get("created")) or timezone.now(),
            **({"line_amounts": lines} if lines or existing is None else {}),
        },
    )
    if subscription is not None:
        subscription_paid_refresh([subscription.pk])
        subscriptions_revalue([subscription])  # a metered (or untiered) price is valued by its latest invoice
    return invoice


def _line_price_id(line: Mapping[str, Any]) -> str:
    """The price an invoice line bills: `pricing.price_details.price` (current shape) or `price` (older)."""
    pricing = line.get("pricing") or {}
    details = pricing.get("price_details") or {} if isinstance(pricing, Mapping) else {}
    return expandable_id(details.get("price")) or expandable_id(line.get("price")) or expandable_id(line.get("plan"))


def _line_is_proration(line: Mapping[str, Any]) -> bool:
    parent = line.get("parent") or {}
    details = parent.get("subscription_item_details") or {} if isinstance(parent, Mapping) else {}
    return bool(details.get("proration") or line.get("proration"))


def _line_amounts(invoice: Mapping[str, Any]) -> dict[str, int]:
    """What the invoice billed per price, prorations left out (a change mid-period is not a run-rate)."""
    amounts: dict[str, int] = {}
    for line in (invoice.get("lines") or {}).get("data") or []:
        if not isinstance(line, Mapping) or _line_is_proration(line):
            continue
        price_id = _line_price_id(line)
        if price_id:
            amounts[price_id] = amounts.get(price_id, 0) + int(line.get("amount") or 0)
    return amounts


def charge_upsert(obj: Mapping[str, Any]) -> Charge:
    """Mirror a charge. Refunds and disputes only ever grow, so a late, older snapshot cannot shrink them."""
    customer = linked_customer(expandable_id(obj.get("customer")))
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
            "charged_at": payload_time(obj.get("created")) or timezone.now(),
        },
    )
    return charge
