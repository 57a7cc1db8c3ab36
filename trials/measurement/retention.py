"""Retention: what happened after the trials ended — paid customers kept, win-back and the cancellation offers'
figures (from offers.selectors, a layer below measurement).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import (
    Count,
    F,
    Q,
)
from django.utils import timezone

from offers.selectors import ReportFilters, cancellation_report
from trials.measurement.behaviour import Distribution
from trials.measurement.scope import (
    AFTER_TRIAL,
    RETENTION_DEFAULT_DAYS,
    WIN_BACK_GOOD,
    Filters,
    cte,
    days_between_sql,
    fetch,
    filtered_trials,
    plus,
)
from trials.measurement.stats import Interval, proportion, wilson_interval


@dataclass(frozen=True)
class RetentionReport:
    """Offers' save rate and MRR saved (from the offers app), win-back recovery of lapsed trials within 30 days
    against the seeds' 8–14%, and time to convert.

    `offers_period` is the calendar days the offers' figures really cover: the offers app caps a report at
    REPORT_MAX_DAYS and reads the last 90 days without a range, while the trial figures follow the filters as
    given — the table names the period so the two are never silently compared over different spans."""

    offers: dict[str, Any]
    offers_period: tuple[date, date]
    lapsed: int
    recovered: int
    recovery_ci: Interval
    converted: int
    days_to_convert: Distribution | None

    @property
    def recovery_rate(self) -> float | None:
        return proportion(self.recovered, self.lapsed)

    @property
    def recovery_verdict(self) -> str:
        rate = self.recovery_rate
        if rate is None:
            return "No lapsed trial has had its 30 days yet."
        low, high = WIN_BACK_GOOD
        if rate < low:
            return f"Below the 8–14% a structured win-back loop gets ({rate:.1%})."
        if rate > high:
            return f"Above the 8–14% benchmark ({rate:.1%})."
        return f"Within the 8–14% benchmark ({rate:.1%})."


def retention_report(*, filters: Filters, now: datetime | None = None) -> RetentionReport:
    """Three aggregate reads: the offers app's cancellation report (save rate, MRR saved — reused, not redone),
    lapsed-trial recovery (one conditional aggregate) and days to convert (quartiles by window function)."""
    now = now or timezone.now()
    until = min(filters.until or timezone.localdate(now), timezone.localdate(now))
    since = filters.since or until - timedelta(days=RETENTION_DEFAULT_DAYS - 1)
    period = ReportFilters(
        days=None, first_day=since, last_day=until, plan_id=filters.plan.pk if filters.plan is not None else None
    )
    offers = cancellation_report(now=now, filters=period)
    offers_period = period.period(now)
    trials = filtered_trials(filters, now)
    lapsed_q = Q(ends_at__lte=now - AFTER_TRIAL) & (Q(converted_at__isnull=True) | Q(converted_at__gt=F("ends_at")))
    recovered_q = lapsed_q & Q(converted_at__gt=F("ends_at"), converted_at__lte=plus("ends_at", AFTER_TRIAL))
    counts = trials.aggregate(
        lapsed=Count("pk", filter=lapsed_q),
        recovered=Count("pk", filter=recovered_q),
        converted=Count("pk", filter=Q(converted_at__isnull=False)),
    )
    base_sql, base_params = cte(trials.filter(converted_at__isnull=False).values("id", "started_at", "converted_at"))
    sql = f"""
        WITH base AS ({base_sql}),
        ranked AS (
            SELECT {days_between_sql("converted_at", "started_at")} AS d,
                   ROW_NUMBER() OVER (ORDER BY {days_between_sql("converted_at", "started_at")}) AS r,
                   COUNT(*) OVER () AS n
            FROM base
        )
        SELECT MIN(d), MAX(CASE WHEN r = (n + 3) / 4 THEN d END), MAX(CASE WHEN r = (2 * n + 3) / 4 THEN d END),
               MAX(CASE WHEN r = (3 * n + 3) / 4 THEN d END), MAX(d), AVG(d), COUNT(*)
        FROM ranked
    """
    record = fetch(sql, base_params)[0]
    days_to_convert = Distribution(*(round(float(value), 1) for value in record[:6])) if record[6] else None
    return RetentionReport(
        offers=offers,
        offers_period=offers_period,
        lapsed=counts["lapsed"],
        recovered=counts["recovered"],
        recovery_ci=wilson_interval(counts["recovered"], counts["lapsed"]),
        converted=counts["converted"],
        days_to_convert=days_to_convert,
    )
