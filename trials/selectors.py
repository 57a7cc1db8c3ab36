"""Reads on subscriptions and trials for the staff UI and the API."""

from __future__ import annotations

from django.db.models import QuerySet

from trials.models import Subscription


def subscription_list() -> QuerySet[Subscription]:
    """Subscriptions with customer, plan and product joined (one query per page)."""
    return Subscription.objects.select_related("customer", "plan__product")


def trials_in_progress() -> QuerySet[Subscription]:
    """Trialing subscriptions, the soonest to end first (served by the partial index on trial_end)."""
    return subscription_list().filter(status=Subscription.Status.TRIALING)
