"""The customer page's panels from the layers above profiles: subscriptions (billing), the current trial (the trial
loop), segment membership (conditions). Profiles know none of those apps; each registers its panel from its
AppConfig.ready() with what it adds to the one customer query (annotations, prefetches — so a panel costs no
extra query to find out it has nothing to show) and the template context it renders from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest

from audiences.models import Customer


@dataclass(frozen=True)
class CustomerPanel:
    """One app's part of the customer page: `annotations` and `prefetches` are added to the customer's query,
    `context(request, customer)` returns the template variables it renders from (empty: nothing to show)."""

    name: str
    context: Callable[[HttpRequest, Customer], dict[str, Any]] = field(default=lambda request, customer: {})
    annotations: Callable[[], dict[str, Any]] = field(default=dict)
    prefetches: Callable[[], list[Prefetch[Any]]] = field(default=list)


_panels: dict[str, CustomerPanel] = {}


def register_customer_panel(panel: CustomerPanel) -> None:
    """Add (or replace, by name) a panel of the customer page; apps register from AppConfig.ready()."""
    _panels[panel.name] = panel


def customer_panels() -> list[CustomerPanel]:
    """The registered panels, in registration order."""
    return list(_panels.values())


def customer_query_with_panels(customers: QuerySet[Customer]) -> QuerySet[Customer]:
    """The customer query with every panel's annotations and prefetches."""
    for panel in customer_panels():
        annotations = panel.annotations()
        if annotations:
            customers = customers.annotate(**annotations)
        prefetches = panel.prefetches()
        if prefetches:
            customers = customers.prefetch_related(*prefetches)
    return customers


def customer_panels_context(request: HttpRequest, customer: Customer) -> dict[str, Any]:
    """Every panel's template variables for this customer and viewer."""
    context: dict[str, Any] = {}
    for panel in customer_panels():
        context.update(panel.context(request, customer))
    return context
