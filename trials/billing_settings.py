"""Changing how billing is reported: the workspace currency, the currency rates, and the account mapping rule.

Every door (the staff page, the admin, a shell) calls these, so each change is audited the same way
(BillingSettings and CurrencyRate are in config.audit's list) and its consequence happens at once, in the same
transaction: a new rate re-values the MRR of the subscriptions in that currency, a new workspace currency drops
the rates (they were relative to the old one) and re-values everything, a new mapping rule maps every Stripe
customer again. The customers whose MRR changed get their billing traits recomputed and their live audiences
re-evaluated. No network: rates are what the admin typed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from audiences.models import Customer
from audiences.pipeline import BatchFacts
from segments.live.membership import audiences_refresh
from trials.billing import customer_billing_refresh, stripe_customer_map_account
from trials.models import BillingSettings, CurrencyRate, StripeCustomer
from trials.services import billing_settings, subscriptions_reconvert

MAPPING_CHUNK = 500


def _billing_changed(customer_ids: set[int]) -> None:
    """Recompute billing traits of customers whose converted MRR changed, and re-evaluate their audiences."""
    for customer in Customer.objects.filter(pk__in=customer_ids):
        customer_billing_refresh(customer)
    if customer_ids:
        audiences_refresh(facts=BatchFacts(billing_changed=set(customer_ids)), now=timezone.now())


@transaction.atomic
def billing_settings_update(*, data: dict[str, Any]) -> BillingSettings:
    """Save the workspace currency and the account mapping rule (validated by trials.forms)."""
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
