"""Changing how billing is reported: the workspace currency, the currency rates, and the account mapping rule.

Every door (the staff page, the admin, a shell) calls these, so each change is audited the same way
(BillingSettings and CurrencyRate are in config.audit's list) and its consequence happens at once, in the same
transaction: a new rate re-values the MRR of the subscriptions in that currency, a new workspace currency drops
the rates (they were relative to the old one) and re-values everything, a new mapping rule maps every Stripe
customer again. The customers whose MRR changed get their billing traits recomputed, and whoever registered with
`on_billing_changed` (live audiences re-evaluating them, wired in SegmentsConfig.ready) hears of them. No
network: rates are what the admin typed.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.db import transaction

from audiences.models import Customer
from integrations.stripe.currency import billing_settings
from integrations.stripe.customers import stripe_customer_map_account
from integrations.stripe.models import BillingSettings, CurrencyRate, StripeCustomer
from integrations.stripe.mrr import subscriptions_reconvert
from integrations.stripe.traits import customer_billing_refresh

MAPPING_CHUNK = 500

BillingChanged = Callable[[set[int]], object]
"""Told the customers whose billing a settings change re-valued, inside the change's transaction."""

_billing_changed_handlers: list[BillingChanged] = []


def on_billing_changed(handler: BillingChanged) -> None:
    """Register, from an AppConfig.ready, what else follows a re-valuation (live audiences re-evaluate the
    customers), so this layer calls no layer above it."""
    if handler not in _billing_changed_handlers:
        _billing_changed_handlers.append(handler)


def _billing_changed(customer_ids: set[int]) -> None:
    """Recompute billing traits of customers whose converted MRR changed, then tell the registered handlers."""
    for customer in Customer.objects.filter(pk__in=customer_ids):
        customer_billing_refresh(customer)
    if customer_ids:
        for handler in _billing_changed_handlers:
            handler(set(customer_ids))


@transaction.atomic
def billing_settings_update(*, data: dict[str, Any]) -> BillingSettings:
    """Save the workspace currency and the account mapping rule (validated by integrations.stripe.forms)."""
    settings = billing_settings()
    old_currency = settings.currency.lower()
    old_rule = (settings.account_metadata_key, settings.account_by_email_domain)
    for field, value in data.items():
        setattr(settings, field, value)
    settings.currency = settings.currency.lower()
    settings.save()
    if settings.currency != old_currency:
        for rate in CurrencyRate.objects.all():
            rate.delete()  # one by one, so the audit log keeps each removed rate
        _billing_changed(subscriptions_reconvert())
    if (settings.account_metadata_key, settings.account_by_email_domain) != old_rule:
        stripe_customers_remap()
    return settings


@transaction.atomic
def currency_rate_set(*, currency: str, rate: Decimal) -> CurrencyRate:
    """Add or change the rate of one currency and re-value the MRR billed in it."""
    code = currency.strip().lower()
    row = CurrencyRate.objects.filter(currency=code).first() or CurrencyRate(currency=code)
    row.rate = rate
    row.save()
    _billing_changed(subscriptions_reconvert(currencies=[code]))
    return row


@transaction.atomic
def currency_rate_delete(*, currency: str) -> None:
    """Remove a rate: MRR billed in that currency is shown apart again, never summed."""
    code = currency.strip().lower()
    for row in CurrencyRate.objects.filter(currency=code):
        row.delete()
    _billing_changed(subscriptions_reconvert(currencies=[code]))


def stripe_customers_remap(*, chunk: int = MAPPING_CHUNK) -> int:
    """Map every Stripe customer to its account again by the current rule, in chunks; returns how many."""
    done, after = 0, 0
    while True:
        batch = list(StripeCustomer.objects.filter(pk__gt=after).order_by("pk")[:chunk])
        if not batch:
            return done
        for stripe_customer in batch:
            stripe_customer_map_account(stripe_customer)
        done, after = done + len(batch), batch[-1].pk
