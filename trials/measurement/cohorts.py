"""Conversion by cohort and activation-event discovery: which trials converted, grouped by start week or month,
and which early events set converters apart — the reports that tell a team what "activated" should mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db.models import (
    Case,
    CharField,
    Count,
    F,
    Max,
    Q,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncMonth, TruncWeek
from django.utils import timezone

from segments.models import Segment
from trials.loop.lifecycle import activation_definition
from trials.measurement.scope import (
    AFTER_TRIAL,
    DEFAULT_DISCOVERY_DAYS,
    DEFAULT_THRESHOLDS,
    Filters,
    Period,
    Split,
    converted_case,
    cte,
    ended_trials,
    event_window,
    fetch,
    filtered_trials,
    in_segment,
    plus,
    plus_days_sql,
)
from trials.measurement.stats import Comparison, Interval, compare, proportion, wilson_interval


@dataclass(frozen=True)
class CohortRow:
    """One signup cohort (and split group): how many trials, how many converted in the window and 30 days after."""

    cohort: date
    group: str
    trials: int
    converted_in_trial: int
    converted_30d: int
    window_closed: bool
    mature: bool

    @property
    def rate_in_trial(self) -> float | None:
        return proportion(self.converted_in_trial, self.trials)

    @property
    def rate_30d(self) -> float | None:
        return proportion(self.converted_30d, self.trials)

    @property
    def rate_30d_ci(self) -> Interval:
        return wilson_interval(self.converted_30d, self.trials)


@dataclass(frozen=True)
class CohortReport:
    period: Period
    split: Split
    rows: list[CohortRow]
    groups: list[str]


def _split_expression(split: Split, now: datetime, segment: Segment | None) -> Any:
    if split == "model":
        return F("model")
    if split == "source":
        return Coalesce(F("source"), Value(""))
    if split == "plan":
        return Coalesce(F("subscription__plan__name"), Value("No plan"))
    if split == "segment":
        if segment is None:
            raise ValueError("Choose a segment to split by.")
        return Case(
            When(in_segment(segment, now), then=Value(f"In {segment.name}")),
            default=Value(f"Not in {segment.name}"),
            output_field=CharField(),
        )
    return Value("All trials", output_field=CharField())


def conversion_cohorts(
    *, filters: Filters, period: Period = "week", split: Split = "", split_segment: Segment | None = None,
    now: datetime | None = None,
) -> CohortReport:  # fmt: skip
    """Trials by signup week or month (and split group): converted within the trial window and within 30 days
    after it. One GROUP BY query. A cohort is `window_closed` once all its trials ended and `mature` once 30 days
    passed after the last end — before that its rates can still rise and the page says so."""
    now = now or timezone.now()
    trunc = TruncWeek("started_at") if period == "week" else TruncMonth("started_at")
    rows = (
        filtered_trials(filters, now)
        .annotate(cohort=trunc, group=_split_expression(split, now, split_segment))
        .values("cohort", "group")
        .annotate(
            trials=Count("pk"),
            converted_in_trial=Count("pk", filter=Q(converted_at__lte=F("ends_at"))),
            converted_30d=Count("pk", filter=Q(converted_at__lte=plus("ends_at", AFTER_TRIAL))),
            last_end=Max("ends_at"),
        )
        .order_by("cohort", "group")
    )
    result = [
        CohortRow(
            cohort=timezone.localtime(row["cohort"]).date() if isinstance(row["cohort"], datetime) else row["cohort"],
            group=str(row["group"] or "(none)"),
            trials=row["trials"],
            converted_in_trial=row["converted_in_trial"],
            converted_30d=row["converted_30d"],
            window_closed=row["last_end"] <= now,
            mature=row["last_end"] + AFTER_TRIAL <= now,
        )
        for row in rows
    ]
    return CohortReport(period=period, split=split, rows=result, groups=sorted({row.group for row in result}))


@dataclass(frozen=True)
class DiscoveryRow:
    """One candidate activation event: "did `event` at least `threshold` times in the first D days"."""

    event: str
    threshold: int
    comparison: Comparison
    share_of_converters: float | None
    coverage: float | None
    is_current: bool

    @property
    def doers(self) -> int:
        return self.comparison.trials_a


@dataclass(frozen=True)
class DiscoveryReport:
    days: int
    ended_trials: int
    converters: int
    rows: list[DiscoveryRow]


def activation_discovery(
    *, filters: Filters, days: int = DEFAULT_DISCOVERY_DAYS, now: datetime | None = None
) -> DiscoveryReport:
    """For every tracked event name and threshold, among ended trials: doers vs non-doers conversion, lift with
    its 95% interval, the share of converters who did it and coverage — ranked by the lift's lower bound, so a
    large, certain lift beats a large, noisy one. Two queries: the totals, and one pass that counts each trial's
    events per name inside its first `days` days and sums doers per threshold with conditional aggregates."""
    now = now or timezone.now()
    ended = ended_trials(filters, now)
    totals = ended.aggregate(trials=Count("pk"), converters=Count("pk", filter=Q(converted_at__isnull=False)))
    base_sql, base_params = cte(ended.values("id", "customer_id", "started_at", conv=converted_case()))
    columns = ", ".join(
        f"SUM(CASE WHEN n >= {int(k)} THEN 1 ELSE 0 END), SUM(CASE WHEN n >= {int(k)} THEN conv ELSE 0 END)"
        for k in DEFAULT_THRESHOLDS
    )
    window = event_window("e.timestamp", "b.started_at", plus_days_sql("b.started_at"))
    sql = f"""
        WITH base AS ({base_sql}),
        counts AS (
            SELECT b.id AS trial_id, e.name AS name, COUNT(*) AS n, MAX(b.conv) AS conv
            FROM base b JOIN audiences_event e ON e.customer_id = b.customer_id AND {window}
            WHERE e.type = 'track' AND e.name <> ''
            GROUP BY b.id, e.name
        )
        SELECT name, {columns} FROM counts GROUP BY name
    """
    definition = activation_definition()
    # A row is the current definition only for the same event, threshold and window (the one-click action saves
    # `days` as hours): a 7-day row is not the 72-hour definition, and must stay adoptable.
    current = (definition.activation_event, definition.activation_count, definition.activation_within_hours)
    trials, converters = totals["trials"], totals["converters"]
    rows = []
    for record in fetch(sql, (*base_params, days)):  # one row per event name, already aggregated
        name = record[0]
        for index, threshold in enumerate(DEFAULT_THRESHOLDS):
            doers, doers_converted = int(record[1 + 2 * index] or 0), int(record[2 + 2 * index] or 0)
            if doers == 0:
                continue
            rows.append(
                DiscoveryRow(
                    event=name,
                    threshold=threshold,
                    comparison=compare(doers_converted, doers, converters - doers_converted, trials - doers),
                    share_of_converters=proportion(doers_converted, converters),
                    coverage=proportion(doers, trials),
                    is_current=(name, threshold, days * 24) == current,
                )
            )
    rows.sort(key=lambda row: (-(row.comparison.ratio_ci.low or 0.0), -(row.coverage or 0.0), row.event))
    return DiscoveryReport(days=days, ended_trials=trials, converters=converters, rows=rows)
