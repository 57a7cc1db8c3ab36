"""Template filters for money and JSON values in the staff UI."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django import template

from config.money import format_money, to_major

register = template.Library()


@register.filter
def cents(value: int | None, currency: str = "usd") -> str:
    """Hundredths of a currency unit (converted totals: `*_cents` columns) as money in that currency, with its own
    decimals: 123456 → "$1,234.56", in JPY "1,235 JPY"; empty (no rate) → "—"."""
    if value is None:
        return "—"
    return format_money(Decimal(value) / 100, str(currency or "usd"))


@register.filter
def money(value: int | None, currency: str = "usd") -> str:
    """A Stripe amount in the currency's smallest unit as money: 10000 JPY → "10,000 JPY", 10000 USD → "$100.00"."""
    if value is None:
        return "—"
    code = str(currency or "usd")
    return format_money(to_major(value, code), code)


@register.filter
def as_json(value: Any) -> str:
    """A JSON value, compact and readable, for trait and property cells."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)
