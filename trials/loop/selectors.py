"""Reads on subscriptions and trials for the staff UI and the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet

from integrations.stripe.models import Subscription
from trials.loop.models import Trial, TrialStage, TrialStageChange


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
    """Trials per stage now, the trials that reached each stage within the chosen period, and the stage changes
    (flows) within it."""

    since: datetime
    stages: list[dict[str, Any]]
    flows: list[dict[str, Any]]
    total: int


# When a trial reached a stage, from its own milestones: a trial passes through activate (or habit) on its way to
# signal or convert without a recorded change into it, when one batch or one backfill brings it all at once.
MILESTONES = {
    TrialStage.TRIGGER: "started_at",
    TrialStage.ACTIVATE: "activated_at",
    TrialStage.SIGNAL: "signal_at",
    TrialStage.CONVERT: "converted_at",
    TrialStage.RECOVER: "expired_at",
}


def _reached(stage: str, since: datetime, now: datetime) -> Q:
    """A trial reached `stage` within [since, now]: its milestone falls in the period (habit needs activation
    too, so it is reached at the later of the two), or a change into the stage was recorded in it (lost, and a
    trial that came back to a stage after a restart)."""
    recorded = Q(
        Exists(
            TrialStageChange.objects.filter(
                trial=OuterRef("pk"), to_stage=stage, changed_at__gte=since, changed_at__lte=now
            )
        )
    )
    if stage == TrialStage.HABIT:
        both = Q(habit_at__isnull=False, activated_at__isnull=False)
        later_habit = Q(habit_at__gte=F("activated_at")) & Q(habit_at__gte=since, habit_at__lte=now)
        later_activation = Q(activated_at__gt=F("habit_at"), activated_at__gte=since, activated_at__lte=now)
        return (both & (later_habit | later_activation)) | recorded
    field = MILESTONES.get(TrialStage(stage))
    if field is None:
        return recorded
    return Q(**{f"{field}__gte": since, f"{field}__lte": now}) | recorded


def loop_board(*, days: int, now: datetime) -> LoopBoard:
    """Three aggregate queries: current trials per stage; trials that reached each stage since `days` ago
    (counted once each, whether or not the stage was recorded on the way); and stage changes per (from, to)."""
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
    reached = Trial.objects.aggregate(
        **{key: Count("pk", filter=_reached(key, since, now)) for key, _ in TrialStage.choices}
    )
    labels = dict(TrialStage.choices)
    flows = []
    for row in sorted(flow_rows, key=lambda r: (-r["n"], r["from_stage"], r["to_stage"])):
        flows.append(
            {
                "from": labels.get(row["from_stage"], "New trial"),
                "to": labels[row["to_stage"]],
                "count": row["n"],
            }
        )
    stages = [
        {"key": key, "label": label, "count": counts.get(key, 0), "reached": reached[key] or 0}
        for key, label in TrialStage.choices
    ]
    return LoopBoard(since=since, stages=stages, flows=flows, total=sum(counts.values()))


def customer_trial(customer_id: int) -> dict[str, Any] | None:
    """The customer's current trial and its latest stage changes (two queries), for the customer page."""
    trial = Trial.objects.filter(customer_id=customer_id, is_current=True).first()
    if trial is None:
        return None
    return {"trial": trial, "stage_changes": list(trial.stage_changes.order_by("-changed_at", "-pk")[:10])}
