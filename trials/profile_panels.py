"""The customer page's panels from the trials app, registered with audiences.panels from TrialsConfig.ready():
the customer's subscriptions (plan, product, add-ons — prefetched with the customer) and their current trial with
its score breakdown (read only when the customer has one, known from an annotation of the customer query).
Profiles never import the apps above them."""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, Prefetch, Subquery
from django.http import HttpRequest

from audiences.models import Customer
from audiences.panels import CustomerPanel
from trials.models import Subscription, Trial
from trials.selectors import customer_trial


def _subscriptions_prefetch() -> list[Prefetch[Any]]:
    subscriptions = Subscription.objects.select_related("plan__product").prefetch_related("add_on_items__add_on")
    return [Prefetch("subscriptions", queryset=subscriptions.order_by("-started_at"))]


def _current_trial_id() -> dict[str, Any]:
    current_trial = Trial.objects.filter(customer=OuterRef("pk"), is_current=True).values("pk")[:1]
    return {"current_trial_id": Subquery(current_trial)}


def _trial_loop(request: HttpRequest, customer: Customer) -> dict[str, Any]:
    """The current trial for roles that may see trials; no query when the customer has no trial."""
    if getattr(customer, "current_trial_id", None) is None or not request.user.has_perm("trials.view_trial"):
        return {}
    return {"trial_loop": customer_trial(customer.pk)}


SUBSCRIPTIONS_PANEL = CustomerPanel(name="subscriptions", prefetches=_subscriptions_prefetch)
TRIAL_PANEL = CustomerPanel(name="trial", context=_trial_loop, annotations=_current_trial_id)
