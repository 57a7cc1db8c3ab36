"""Reading Stripe payloads: Unix times, expandable ids, where an invoice names its subscription, and the refetch
hook. Shared by every part of the mirror so each reads Stripe's shapes (current and older API versions) alike."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

#: Fetches the current state of a Stripe object ("subscription", id) through the API, or None.
Refetch = Callable[[str, str], Mapping[str, Any] | None]


def payload_time(value: Any) -> datetime | None:
    """A Stripe Unix time as an aware datetime (None for a missing or zero time)."""
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def iso_or_none(moment: datetime | None) -> str | None:
    """A moment as event properties carry it (ISO 8601), or None."""
    return moment.isoformat() if moment else None


def expandable_id(value: Any) -> str:
    """An expandable field's id, whether Stripe sent the id or the expanded object."""
    if isinstance(value, Mapping):
        return str(value.get("id", ""))
    return str(value or "")


def invoice_subscription_id(invoice: Mapping[str, Any]) -> str:
    """The subscription an invoice bills: under `parent.subscription_details` (current shape) or `subscription`."""
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    return expandable_id(details.get("subscription")) or expandable_id(invoice.get("subscription"))
