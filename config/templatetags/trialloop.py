"""Template filters for money and JSON values in the staff UI."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django import template

register = template.Library()


@register.filter
def cents(value: int | None, currency: str = "usd") -> str:
    """Integer cents as money: 123456 → "$1,234.56" (other currencies get their code as a suffix)."""
    if value is None:
        return "—"
    amount = f"{Decimal(value) / 100:,.2f}"
    return f"${amount}" if currency.lower() == "usd" else f"{amount} {currency.upper()}"


@register.filter
def as_json(value: Any) -> str:
    """A JSON value, compact and readable, for trait and property cells."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)
