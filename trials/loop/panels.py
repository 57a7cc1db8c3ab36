"""The customer page's trial panel, registered with audiences.panels from TrialsConfig.ready(): the customer's
current trial with its score breakdown (read only when the customer has one, known from an annotation of the
customer query). Profiles never import the apps above them."""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, Subquery
from django.http import HttpRequest

from audiences.models import Customer
from audiences.panels import CustomerPanel
from trials.loop.models import Trial
from trials.loop.selectors import customer_trial


def _current_trial_id() -> dict[str, Any]:
    current_trial = Trial.objects.filter(customer=OuterRef("pk"), is_current=True).values("pk")[:1]
    return {"current_trial_id": Subquery(current_trial)}


def _trial_loop(request: HttpRequest, customer: Customer) -> dict[str, Any]:
    """The current trial for roles that may see trials; no query when the customer has no trial."""
    if getattr(customer, "current_trial_id", None) is None or not request.user.has_perm("trials.view_trial"):
        return {}
    return {"trial_loop": customer_trial(customer.pk)}


TRIAL_PANEL = CustomerPanel(name="trial", context=_trial_loop, annotations=_current_trial_id)
