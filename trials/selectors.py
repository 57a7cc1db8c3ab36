"""Reads on subscriptions and trials for the staff UI and the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, QuerySet

from trials.models import Subscription, Trial, TrialStage, TrialStageChange


def subscription_list() -> QuerySet[Subscription]:
    """Subscriptions with customer, plan and product joined (one query per page)."""
    return Subscription.objects.select_related("customer", "plan__product")


def trials_in_progress() -> QuerySet[Subscription]:
    """Trialing subscriptions, the soonest to end first (served by the partial index on trial_end)."""
    return subscription_list().filter(status=Subscription.Status.TRIALING)


def trial_list() -> QuerySet[Trial]:
    """Each customer's current trial with the customer and plan joined (one query per page)."""
    return Trial.objects.filter(is_current=True).select_related("customer", "subscription__plan")


@dataclass(frozen=True)
class LoopBoard:
    """Trials per stage now, and the stage changes (flows) within the chosen period."""

    since: datetime
    stages: list[dict[str, Any]]
    flows: list[dict[str, Any]]
    total: int


def loop_board(*, days: int, now: datetime) -> LoopBoard:
    """Two aggregate queries: current trials per stage, and stage changes per (from, to) since `days` ago."""
    since = now - timedelta(days=days)
    counts = dict(
        Trial.objects.filter(is_current=True)
        .order_by()
        .values_list("stage")
        .annotate(n=Count("pk"))
        .values_list("stage", "n")
    )
    flow_rows = (
        TrialStageChange.objects.filter(changed_at__gte=since, changed_at__lte=now)
        .order_by()
        .values("from_stage", "to_stage")
        .annotate(n=Count("pk"))
    )
    labels = dict(TrialStage.choices)
    entered: dict[str, int] = {}
    flows = []
    for row in sorted(flow_rows, key=lambda r: (-r["n"], r["from_stage"], r["to_stage"])):
        entered[row["to_stage"]] = entered.get(row["to_stage"], 0) + row["n"]
        flows.append(
            {
                "from": labels.get(row["from_stage"], "New trial"),
                "to": labels[row["to_stage"]],
                "count": row["n"],
            }
        )
    stages = [
        {"key": key, "label": label, "count": counts.get(key, 0), "entered": entered.get(key, 0)}
        for key, label in TrialStage.choices
    ]
    return LoopBoard(since=since, stages=stages, flows=flows, total=sum(counts.values()))


def customer_trial(customer_id: int) -> dict[str, Any] | None:
    """The customer's current trial and its latest stage changes (two queries), for the customer page."""
    trial = Trial.objects.filter(customer_id=customer_id, is_current=True).first()
    if trial is None:
        return None
    return {"trial": trial, "stage_changes": list(trial.stage_changes.order_by("-changed_at", "-pk")[:10])}
