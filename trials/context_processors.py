"""Template context every staff page gets from the trials app: the workspace currency money is shown in."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from integrations.stripe.models import BillingSettings


def _currency() -> str:
    currency = BillingSettings.objects.filter(pk=1).values_list("currency", flat=True).first()
    return (currency or "usd").lower()


def workspace_currency(request: HttpRequest) -> dict[str, object]:
    """`workspace_currency`, for the `cents` filter (converted totals are hundredths of it): read once, and only
    by a page that shows money."""
    return {"workspace_currency": SimpleLazyObject(_currency)}
