"""Reads for the dashboard: headline figures and the health of background jobs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Q, Sum
from django.utils import timezone

from audiences.models import Customer, Event
from audiences.selectors import estimated_row_count
from config.models import TaskRun
from trials.models import Subscription


def dashboard_figures() -> dict[str, Any]:
    """Headline numbers in three queries: customers (estimated), subscriptions by status, events today."""
    by_status = Subscription.objects.aggregate(
        trialing=Count("id", filter=Q(status=Subscription.Status.TRIALING)),
        active=Count("id", filter=Q(status=Subscription.Status.ACTIVE)),
        past_due=Count("id", filter=Q(status=Subscription.Status.PAST_DUE)),
        mrr_cents=Sum("mrr_cents"),
    )
    since = timezone.now() - timedelta(hours=24)
    return {
        "customers": estimated_row_count(Customer),
        "trialing": by_status["trialing"],
        "active": by_status["active"],
        "past_due": by_status["past_due"],
        "mrr_cents": by_status["mrr_cents"] or 0,
        "events_24h": Event.objects.filter(timestamp__gte=since).count(),
    }


def latest_task_runs(limit: int = 10) -> list[TaskRun]:
    """The most recent periodic job runs, to show that beat and the worker are alive."""
    return list(TaskRun.objects.order_by("-started_at")[:limit])
