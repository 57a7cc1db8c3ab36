"""The workspace currency and the admin's conversion rates: the billing settings row and a conversion read once.

No network: rates are what the admin typed (CurrencyRate), so reported MRR never depends on a feed being up.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from config.money import convert_to_cents
from integrations.stripe.models import BillingSettings, CurrencyRate


def billing_settings() -> BillingSettings:
    """The one settings row (created with defaults when a database has none)."""
    settings, _ = BillingSettings.objects.get_or_create(pk=1)
    return settings


@dataclass(frozen=True)
class Conversion:
    """The workspace currency and the admin's rates, read once for a batch of conversions."""

    currency: str
    rates: dict[str, Decimal]

    def to_cents(self, amount_minor: int, currency: str) -> int | None:
        """A Stripe amount in `currency` as hundredths of the workspace currency; None without a rate."""
        return convert_to_cents(amount_minor, currency, workspace_currency=self.currency, rates=self.rates)


def conversion() -> Conversion:
    """The workspace currency and every rate (two small reads)."""
    return Conversion(
        currency=billing_settings().currency.lower(),
        rates={r.currency.lower(): r.rate for r in CurrencyRate.objects.all()},
    )
