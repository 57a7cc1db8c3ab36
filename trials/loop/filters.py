"""Filter sets for subscriptions and trials, shared by the API and the staff UI."""

from __future__ import annotations

import django_filters

from audiences.filters import IdFilter, UtcIsoDateTimeFilter
from integrations.stripe.models import Subscription
from trials.loop.models import Trial, TrialStage


class SubscriptionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Subscription.Status.choices)
    customer = IdFilter(field_name="customer_id")
    plan = IdFilter(field_name="plan_id")
    stripe_subscription_id = django_filters.CharFilter()
    trial_ends_before = UtcIsoDateTimeFilter(field_name="trial_end", lookup_expr="lt")

    class Meta:
        model = Subscription
        fields = ["status", "customer", "plan", "stripe_subscription_id", "trial_ends_before"]


class TrialFilter(django_filters.FilterSet):
    stage = django_filters.ChoiceFilter(choices=TrialStage.choices)
    model = django_filters.ChoiceFilter(choices=Trial.Model.choices)
    min_pql = django_filters.NumberFilter(field_name="pql_score", lookup_expr="gte", label="PQL at least")

    class Meta:
        model = Trial
        fields = ["stage", "model", "min_pql"]
