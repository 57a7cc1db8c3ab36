"""Money in many currencies: Stripe's minor units, and one workspace currency that totals are reported in.

Stripe states every amount as an integer in the currency's smallest unit, and that unit is not always a
hundredth: ¥10,000 is `10000`, not `1000000` (zero-decimal currencies), and 5.120 KWD is `5120` (three-decimal
currencies). ISK, HUF and TWD are two-decimal in the API although payouts treat them as whole units, so they stay
in the default. The lists follow Stripe's currency page; `minor_unit_exponent` is the only place that knows them.

Totals (dashboard MRR, a customer's MRR, reports) are in the workspace currency (`BillingSettings.currency`),
converted with the rates an admin keeps in `CurrencyRate` — no network, no silent rate. Converted amounts are
kept in hundredths of a workspace-currency unit (`*_cents` columns), whatever that currency's own minor unit, so
segments compare "MRR > 100" the same way in every workspace. A currency without a rate converts to None: it
is shown on its own and never added to a total.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal

ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
CENTS = Decimal(100)
"""Converted amounts are hundredths of a workspace-currency unit."""


def minor_unit_exponent(currency: str) -> int:
    """How many decimal places Stripe's integer amounts carry in this currency (0, 2 or 3)."""
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def to_major(amount_minor: int | Decimal, currency: str) -> Decimal:
    """A Stripe amount (smallest unit) as currency units: 10000 JPY → 10000, 10000 USD → 100."""
    return Decimal(amount_minor) / (Decimal(10) ** minor_unit_exponent(currency))


def convert_to_cents(
    amount_minor: int | Decimal, currency: str, *, workspace_currency: str, rates: Mapping[str, Decimal]
) -> int | None:
    """A Stripe amount in `currency` as hundredths of the workspace currency (rounded half up), or None when
    there is no rate for `currency` (never guessed, never summed)."""
    code, target = currency.lower(), workspace_currency.lower()
    if code == target:
        rate = Decimal(1)
    elif code in rates:
        rate = rates[code]
    else:
        return None
    return int((to_major(amount_minor, code) * rate * CENTS).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_money(amount_major: Decimal, currency: str) -> str:
    """Currency units as text with the currency's own decimals: "$1,234.56", "10,000 JPY", "5.120 KWD"."""
    digits = minor_unit_exponent(currency)
    text = f"{amount_major:,.{digits}f}"
    return f"${text}" if currency.lower() == "usd" else f"{text} {currency.upper()}"
