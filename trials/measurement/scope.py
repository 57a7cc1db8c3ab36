"""What every measurement report shares: the filters, the trial set they select, and the helpers of the
hand-written SQL.

Why in SQL: the reports must stay fast at hundreds of thousands of trials and tens of millions of events, so
each report is a handful of aggregate queries whatever the number of trials; Python only touches the
already-aggregated rows. Where the ORM cannot express a join without a foreign key (trials to events), the trial
set is still built and filtered by the ORM and embedded as a common table expression in the hand-written SQL,
so every filter applies the same way to every report. The statistics live in trials.measurement.stats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from django.db import connection
from django.db.models import (
    Case,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.expressions import CombinedExpression
from django.utils import timezone

from audiences.models import Customer
from integrations.stripe.models import Plan
from segments.compiler import compile_tree
from segments.conditions import parse_tree
from segments.models import Segment
from trials.loop.models import Trial

AFTER_TRIAL = timedelta(days=30)
"""Conversion "within 30 days after" the trial, and the win-back window the seeds measure recovery over."""
BENCHMARKS: dict[str, dict[str, float]] = {
    Trial.Model.OPT_IN: {"median": 0.17, "top_quartile": 0.25},
    Trial.Model.OPT_OUT: {"median": 0.60},
}
"""Public trial-to-paid benchmarks (Userpilot 2024, quoted in the seeds)."""
WIN_BACK_GOOD = (0.08, 0.14)
"""A structured 30-day win-back loop gets 8–14% of lapsed trials back (the seeds)."""
DEFAULT_THRESHOLDS = (1, 2, 3, 5)
"""Discovery's candidates: each event done at least 1, 2, 3 or 5 times."""
DEFAULT_DISCOVERY_DAYS = 7
UPLIFT_HORIZON = timedelta(days=30)
"""A send (or its holdout) counts as converted when the customer's trial converts within this long after it."""
INVITE_EVENT = "Teammate Invited"
RETENTION_DEFAULT_DAYS = 90
"""The offers' figures cover the sessions of the chosen date range, or of the last 90 days without one."""

Period = Literal["week", "month"]
Split = Literal["", "model", "source", "plan", "segment"]


@dataclass(frozen=True)
class Filters:
    """Which trials a report reads: started in [since, until] (dates, inclusive), of a model, source, plan or in a
    segment. Empty values mean "all"."""

    since: date | None = None
    until: date | None = None
    model: str = ""
    source: str = ""
    plan: Plan | None = None
    segment: Segment | None = None


def day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


def in_segment(segment: Segment, now: datetime) -> Exists:
    """Whether the trial's customer matches the segment's conditions now (compiled, so any segment works — live
    or not — the same way the segment page counts it)."""
    condition = compile_tree(parse_tree(segment.conditions, segment_id=segment.pk), now)
    return Exists(Customer.objects.filter(condition, pk=OuterRef("customer_id")))


def within_dates(column: str, filters: Filters) -> Q:
    """`column` falls on a local calendar day in [since, until]: the one date-range condition of every report (trial
    starts, or the decisions of the uplift report). The form bounds the dates, so the day after `until` exists."""
    condition = Q()
    if filters.since:
        condition &= Q(**{f"{column}__gte": day_start(filters.since)})
    if filters.until:
        condition &= Q(**{f"{column}__lt": day_start(filters.until + timedelta(days=1))})
    return condition


def filtered_trials(filters: Filters, now: datetime) -> QuerySet[Trial]:
    """The trials every report starts from, with the filters applied in SQL."""
    trials = Trial.objects.filter(within_dates("started_at", filters))
    if filters.model:
        trials = trials.filter(model=filters.model)
    if filters.source:
        trials = trials.filter(source=filters.source)
    if filters.plan is not None:
        trials = trials.filter(subscription__plan=filters.plan)
    if filters.segment is not None:
        trials = trials.filter(in_segment(filters.segment, now))
    return trials.order_by()


def plus(column: str, delta: timedelta) -> ExpressionWrapper[CombinedExpression]:
    return ExpressionWrapper(F(column) + delta, output_field=DateTimeField())


def cte(queryset: QuerySet[Any]) -> tuple[str, tuple[Any, ...]]:
    sql, params = queryset.query.sql_with_params()
    return sql, tuple(params)


def event_window(event_time: str, start: str, end_sql: str) -> str:
    """`event_time` in [start, end_sql) — plain comparisons on PostgreSQL (index friendly); on SQLite, where
    datetimes are text in more than one shape, through julianday()."""
    if connection.vendor == "postgresql":
        return f"{event_time} >= {start} AND {event_time} < {end_sql}"
    return f"julianday({event_time}) >= julianday({start}) AND julianday({event_time}) < julianday({end_sql})"


def plus_days_sql(column: str) -> str:
    """`column` plus a number of days given as the next query parameter."""
    if connection.vendor == "postgresql":
        return f"({column} + make_interval(days => %s))"
    return f"datetime({column}, '+' || %s || ' days')"


def days_between_sql(later: str, earlier: str) -> str:
    if connection.vendor == "postgresql":
        return f"(EXTRACT(EPOCH FROM ({later} - {earlier})) / 86400.0)"
    return f"(julianday({later}) - julianday({earlier}))"


def fetch(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def ended_trials(filters: Filters, now: datetime) -> QuerySet[Trial]:
    """Ended trials: the population discovery and converters vs churners compare."""
    return filtered_trials(filters, now).filter(ends_at__lte=now)


def converted_case() -> Case:
    """1 for a converted trial, 0 otherwise: a column the hand-written SQL sums."""
    return Case(When(converted_at__isnull=False, then=Value(1)), default=Value(0), output_field=IntegerField())
