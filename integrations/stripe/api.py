"""The Stripe API client of this installation (STRIPE_API_KEY, STRIPE_API_BASE), and reads through it."""

from __future__ import annotations

from typing import Any

import stripe
from django.conf import settings

from integrations.stripe.payloads import Refetch


class StripeNotConfigured(Exception):
    """No STRIPE_API_KEY: backfill and reconcile cannot run (webhooks still work)."""


def stripe_client() -> stripe.StripeClient:
    """A client for the configured account (and API base, for tests and proxies)."""
    if not settings.STRIPE_API_KEY:
        raise StripeNotConfigured("Set STRIPE_API_KEY to backfill from the Stripe API.")
    options: dict[str, Any] = {"max_network_retries": 2}
    if settings.STRIPE_API_BASE:
        options["base_addresses"] = {"api": settings.STRIPE_API_BASE}
    return stripe.StripeClient(settings.STRIPE_API_KEY, **options)


def object_refetcher() -> Refetch | None:
    """A function reading an object's current state through the API, or None without STRIPE_API_KEY."""
    if not settings.STRIPE_API_KEY:
        return None
    client = stripe_client()

    def refetch(kind: str, object_id: str) -> dict[str, Any] | None:
        try:
            if kind == "subscription":
                fresh: Any = client.v1.subscriptions.retrieve(object_id, params={"expand": ["discounts.source.coupon"]})
            elif kind == "price":
                fresh = client.v1.prices.retrieve(object_id, params={"expand": ["tiers"]})
            else:
                return None
        except stripe.StripeError:
            return None  # the payload is still applied; the API being down must not stop webhooks
        result: dict[str, Any] = fresh.to_dict()
        return result

    return refetch
