"""The customer page's subscriptions panel (plan, product, add-ons — prefetched with the customer), registered with
audiences.panels from IntegrationsConfig.ready(): profiles never import the intake layer above them."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch

from audiences.panels import CustomerPanel
from integrations.stripe.models import Subscription


def _subscriptions_prefetch() -> list[Prefetch[Any]]:
    subscriptions = Subscription.objects.select_related("plan__product").prefetch_related("add_on_items__add_on")
    return [Prefetch("subscriptions", queryset=subscriptions.order_by("-started_at"))]


SUBSCRIPTIONS_PANEL = CustomerPanel(name="subscriptions", prefetches=_subscriptions_prefetch)
