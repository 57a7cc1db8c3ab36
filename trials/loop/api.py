"""REST endpoints for subscriptions and trials (read-only)."""

from __future__ import annotations

from rest_framework import serializers, viewsets

from integrations.stripe.models import Plan, Subscription
from trials.loop import selectors
from trials.loop.filters import SubscriptionFilter, TrialFilter
from trials.loop.models import Trial


class PlanSerializer(serializers.ModelSerializer[Plan]):
    product = serializers.CharField(source="product.name", read_only=True)

    class Meta:
        model = Plan
        fields = ["id", "stripe_price_id", "name", "product", "amount_cents", "currency", "interval", "interval_count"]


class SubscriptionSerializer(serializers.ModelSerializer[Subscription]):
    plan = PlanSerializer(read_only=True)

    class Meta:
        model = Subscription
        fields = [
            "id",
            "stripe_subscription_id",
            "customer",
            "plan",
            "status",
            "quantity",
            "started_at",
            "trial_start",
            "trial_end",
            "current_period_start",
            "current_period_end",
            "cancel_at_period_end",
            "canceled_at",
            "ended_at",
            "coupon_id",
            "discount_percent",
            "discount_amount_cents",
            "discount_duration",
            "currency",
            "mrr_amount",
            "mrr_cents",
        ]


class SubscriptionViewSet(viewsets.ReadOnlyModelViewSet[Subscription]):
    """Subscriptions, newest first; filter by `status`, `customer`, `plan`, `trial_ends_before`."""

    serializer_class = SubscriptionSerializer
    filterset_class = SubscriptionFilter
    queryset = selectors.subscription_list()


class TrialSerializer(serializers.ModelSerializer[Trial]):
    class Meta:
        model = Trial
        fields = [
            "id", "customer", "subscription", "model", "started_at", "ends_at", "source", "use_case", "stage",
            "stage_changed_at", "activated_at", "habit_at", "signal_at", "converted_at", "expired_at", "fit_score",
            "behaviour_score", "pql_score", "score_breakdown",
        ]  # fmt: skip


class TrialViewSet(viewsets.ReadOnlyModelViewSet[Trial]):
    """Each customer's current trial with stage and scores; filter by `stage`, `model`, `min_pql`."""

    serializer_class = TrialSerializer
    filterset_class = TrialFilter
    queryset = Trial.objects.filter(is_current=True)
