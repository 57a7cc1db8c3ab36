"""Reads for the dashboard: headline figures and the health of background jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.utils import timezone

from audiences.models import Customer, Event
from audiences.selectors import estimated_row_count
from config.models import AuditEntry, TaskRun
from integrations.stripe.models import Subscription


def dashboard_figures() -> dict[str, Any]:
    """Headline numbers in four queries: customers (estimated), subscriptions by status with MRR in the workspace
    currency, MRR in currencies without a rate (per currency), events today."""
    by_status = Subscription.objects.aggregate(
        trialing=Count("id", filter=Q(status=Subscription.Status.TRIALING)),
        active=Count("id", filter=Q(status=Subscription.Status.ACTIVE)),
        past_due=Count("id", filter=Q(status=Subscription.Status.PAST_DUE)),
        mrr_cents=Sum("mrr_cents"),
    )
    # MRR in a currency without a rate has no converted value: shown per currency, never added to the total.
    unconverted = (
        Subscription.objects.filter(mrr_amount__gt=0, mrr_cents__isnull=True)
        .order_by("currency")
        .values_list("currency")
        .annotate(total=Sum("mrr_amount"))
    )
    since = timezone.now() - timedelta(hours=24)
    return {
        "customers": estimated_row_count(Customer),
        "trialing": by_status["trialing"],
        "active": by_status["active"],
        "past_due": by_status["past_due"],
        "mrr_cents": by_status["mrr_cents"] or 0,
        "mrr_unconverted": list(unconverted),
        "events_24h": Event.objects.filter(timestamp__gte=since).count(),
    }


def latest_task_runs(limit: int = 10) -> list[TaskRun]:
    """The most recent periodic job runs, to show that beat and the worker are alive."""
    return list(TaskRun.objects.order_by("-started_at")[:limit])


def audit_entries(filters: dict[str, Any]) -> QuerySet[AuditEntry]:
    """The audit log narrowed by the filter form's cleaned values (empty values are no filter), with actors."""
    entries = AuditEntry.objects.select_related("actor")
    if filters.get("model"):
        entries = entries.filter(model=filters["model"])
    if filters.get("action"):
        entries = entries.filter(action=filters["action"])
    if filters.get("actor"):
        entries = entries.filter(actor_name__iexact=filters["actor"].strip())
    if filters.get("object_id"):
        entries = entries.filter(object_id=filters["object_id"].strip())
    zone = timezone.get_current_timezone()
    if filters.get("since"):
        entries = entries.filter(at__gte=datetime.combine(filters["since"], time.min, tzinfo=zone))
    if filters.get("until"):
        entries = entries.filter(at__lt=datetime.combine(filters["until"] + timedelta(days=1), time.min, tzinfo=zone))
    return entries


@dataclass(frozen=True)
class SignInLockout:
    """A username locked out of signing in from one address: how many failures, and until when."""

    username: str
    ip_address: str | None
    failures: int
    last_failure: datetime
    unlocks_at: datetime


def sign_in_lockouts(now: datetime | None = None) -> list[SignInLockout]:
    """Every (username, address) pair locked out now, newest failure first: at least the failure limit inside
    the cool-off window, counted the way axes counts them (its rows per user agent added up). One query."""
    now = now or timezone.now()
    cool_off: timedelta = settings.AXES_COOLOFF_TIME
    pairs = (
        AccessAttempt.objects.filter(attempt_time__gte=now - cool_off)
        .values("username", "ip_address")
        .annotate(failures=Sum("failures_since_start"), last_failure=Max("attempt_time"))
        .filter(failures__gte=settings.AXES_FAILURE_LIMIT)
        .order_by("-last_failure", "username")
    )
    return [
        SignInLockout(
            username=pair["username"] or "",
            ip_address=pair["ip_address"],
            failures=pair["failures"],
            last_failure=pair["last_failure"],
            unlocks_at=pair["last_failure"] + cool_off,
        )
        for pair in pairs
    ]
