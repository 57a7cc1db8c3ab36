"""Filter sets for subscriptions, shared by the API and the staff UI."""

from __future__ import annotations

import django_filters

from trials.models import Subscription


class SubscriptionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Subscription.Status.choices)
    customer = django_filters.NumberFilter(field_name="customer_id")
    plan = django_filters.NumberFilter(field_name="plan_id")
    stripe_subscription_id = django_filters.CharFilter()
    trial_ends_before = django_filters.IsoDateTimeFilter(field_name="trial_end", lookup_expr="lt")

    class Meta:
        model = Subscription
        fields = ["status", "customer", "plan", "stripe_subscription_id", "trial_ends_before"]
