"""Measurement of the loop: conversion by cohort, activation-event discovery, converters vs churners, holdout
uplift and retention — read-only reports aggregated in the database.

Why in SQL: the reports must stay fast at hundreds of thousands of trials and tens of millions of events, so each
report is a handful of aggregate queries (GROUP BY with conditional aggregates, window functions for quartiles)
whatever the number of trials; Python only touches the already-aggregated rows (a cohort, an event name, a
template). Where the ORM cannot express a join without a foreign key (trials to events), the trial set is still
built and filtered by the ORM and embedded as a common table expression in the hand-written SQL, so every filter
applies the same way to every report. The statistics live in trials.stats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from django.db import connection
from django.db.models import (
    Case,
    CharField,
    Count,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Coalesce, TruncMonth, TruncWeek
from django.utils import timezone

from audiences.models import Customer
from integrations.stripe.models import Plan
from offers.selectors import ReportFilters, cancellation_report
from segments.compiler import compile_tree
from segments.conditions import parse_tree
from segments.models import Segment
from trials.loop import activation_definition
from trials.models import Alert, MessageSend, MessageTemplate, Play, Trial
from trials.stats import Comparison, Interval, compare, proportion, wilson_interval

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


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


def _in_segment(segment: Segment, now: datetime) -> Exists:
    """Whether the trial's customer matches the segment's conditions now (compiled, so any segment works — live
    or not — the same way the segment page counts it)."""
    condition = compile_tree(parse_tree(segment.conditions, segment_id=segment.pk), now)
    return Exists(Customer.objects.filter(condition, pk=OuterRef("customer_id")))


def _within_dates(column: str, filters: Filters) -> Q:
    """`column` falls on a local calendar day in [since, until]: the one date-range condition of every report (trial
    starts, or the decisions of the uplift report). The form bounds the dates, so the day after `until` exists."""
    condition = Q()
    if filters.since:
        condition &= Q(**{f"{column}__gte": _day_start(filters.since)})
    if filters.until:
        condition &= Q(**{f"{column}__lt": _day_start(filters.until + timedelta(days=1))})
    return condition


def filtered_trials(filters: Filters, now: datetime) -> QuerySet[Trial]:
    """The trials every report starts from, with the filters applied in SQL."""
    trials = Trial.objects.filter(_within_dates("started_at", filters))
    if filters.model:
        trials = trials.filter(model=filters.model)
    if filters.source:
        trials = trials.filter(source=filters.source)
    if filters.plan is not None:
        trials = trials.filter(subscription__plan=filters.plan)
    if filters.segment is not None:
        trials = trials.filter(_in_segment(filters.segment, now))
    return trials.order_by()


def _plus(column: str, delta: timedelta) -> ExpressionWrapper[CombinedExpression]:
    return ExpressionWrapper(F(column) + delta, output_field=DateTimeField())


# --- 1. conversion by cohort ----------------------------------------------------------------------------------


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
            When(_in_segment(segment, now), then=Value(f"In {segment.name}")),
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
            converted_30d=Count("pk", filter=Q(converted_at__lte=_plus("ends_at", AFTER_TRIAL))),
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


# --- helpers for the hand-written SQL ---------------------------------------------------------------------------


def _cte(queryset: QuerySet[Any]) -> tuple[str, tuple[Any, ...]]:
    sql, params = queryset.query.sql_with_params()
    return sql, tuple(params)


def _event_window(event_time: str, start: str, end_sql: str) -> str:
    """`event_time` in [start, end_sql) — plain comparisons on PostgreSQL (index friendly); on SQLite, where
    datetimes are text in more than one shape, through julianday()."""
    if connection.vendor == "postgresql":
        return f"{event_time} >= {start} AND {event_time} < {end_sql}"
    return f"julianday({event_time}) >= julianday({start}) AND julianday({event_time}) < julianday({end_sql})"


def _plus_days_sql(column: str) -> str:
    """`column` plus a number of days given as the next query parameter."""
    if connection.vendor == "postgresql":
        return f"({column} + make_interval(days => %s))"
    return f"datetime({column}, '+' || %s || ' days')"


def _days_between_sql(later: str, earlier: str) -> str:
    if connection.vendor == "postgresql":
        return f"(EXTRACT(EPOCH FROM ({later} - {earlier})) / 86400.0)"
    return f"(julianday({later}) - julianday({earlier}))"


def _fetch(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _ended(filters: Filters, now: datetime) -> QuerySet[Trial]:
    """Ended trials: the population discovery and converters vs churners compare."""
    return filtered_trials(filters, now).filter(ends_at__lte=now)


def _converted() -> Case:
    """1 for a converted trial, 0 otherwise: a column the hand-written SQL sums."""
    return Case(When(converted_at__isnull=False, then=Value(1)), default=Value(0), output_field=IntegerField())


# --- 2. activation-event discovery ------------------------------------------------------------------------------


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
    ended = _ended(filters, now)
    totals = ended.aggregate(trials=Count("pk"), converters=Count("pk", filter=Q(converted_at__isnull=False)))
    base_sql, base_params = _cte(ended.values("id", "customer_id", "started_at", conv=_converted()))
    columns = ", ".join(
        f"SUM(CASE WHEN n >= {int(k)} THEN 1 ELSE 0 END), SUM(CASE WHEN n >= {int(k)} THEN conv ELSE 0 END)"
        for k in DEFAULT_THRESHOLDS
    )
    window = _event_window("e.timestamp", "b.started_at", _plus_days_sql("b.started_at"))
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
    for record in _fetch(sql, (*base_params, days)):  # one row per event name, already aggregated
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


# --- 3. converters vs churners ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Distribution:
    """Nearest-rank quartiles of one measure in one group."""

    minimum: float
    q1: float
    median: float
    q3: float
    maximum: float
    mean: float


@dataclass(frozen=True)
class BehaviourGroup:
    label: str
    trials: int
    measures: dict[str, Distribution]


MEASURES = ("core_uses", "days_active", "invites")
MEASURE_LABELS = {"core_uses": "Core feature uses", "days_active": "Days active", "invites": "Invites"}


def converters_vs_churners(*, filters: Filters, now: datetime | None = None) -> list[BehaviourGroup]:
    """How converters and churners (ended unconverted) behaved during their trial: core feature uses (the
    definition's high-intent events), days with any event, and teammate invites — quartiles per group from one
    query (a per-trial aggregate, then row numbers over each measure within each group)."""
    now = now or timezone.now()
    definition = activation_definition()
    core = list(definition.habit_events or []) or [definition.activation_event]
    ended = _ended(filters, now).values("id", "customer_id", "started_at", "ends_at", conv=_converted())
    base_sql, base_params = _cte(ended)
    placeholders = ", ".join(["%s"] * len(core))
    window = _event_window("e.timestamp", "b.started_at", "b.ends_at")
    day = "CAST(e.timestamp AS date)" if connection.vendor == "postgresql" else "date(e.timestamp)"
    quartiles = ", ".join(
        f"MIN({m}), MAX(CASE WHEN r_{m} = (n + 3) / 4 THEN {m} END), MAX(CASE WHEN r_{m} = (2 * n + 3) / 4 THEN {m} "
        f"END), MAX(CASE WHEN r_{m} = (3 * n + 3) / 4 THEN {m} END), MAX({m}), AVG({m} * 1.0)"
        for m in MEASURES
    )
    ranks = ", ".join(f"ROW_NUMBER() OVER (PARTITION BY conv ORDER BY {m}) AS r_{m}" for m in MEASURES)
    sql = f"""
        WITH base AS ({base_sql}),
        per_trial AS (
            SELECT b.id, b.conv,
                   SUM(CASE WHEN e.name IN ({placeholders}) THEN 1 ELSE 0 END) AS core_uses,
                   COUNT(DISTINCT {day}) AS days_active,
                   SUM(CASE WHEN e.name = %s THEN 1 ELSE 0 END) AS invites
            FROM base b LEFT JOIN audiences_event e ON e.customer_id = b.customer_id AND {window}
            GROUP BY b.id, b.conv
        ),
        ranked AS (
            SELECT conv, COALESCE(core_uses, 0) AS core_uses, days_active, COALESCE(invites, 0) AS invites, {ranks},
                   COUNT(*) OVER (PARTITION BY conv) AS n
            FROM per_trial
        )
        SELECT conv, n, {quartiles} FROM ranked GROUP BY conv, n ORDER BY conv DESC
    """
    groups = []
    for record in _fetch(sql, (*base_params, *core, INVITE_EVENT)):  # at most two rows: converters, churners
        measures = {}
        for index, measure in enumerate(MEASURES):
            values = [float(value or 0) for value in record[2 + 6 * index : 8 + 6 * index]]
            measures[measure] = Distribution(*values)
        groups.append(BehaviourGroup("Converters" if record[0] else "Churners", int(record[1]), measures))
    return groups


# --- 4. holdout uplift ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpliftRow:
    """A template (or play): customers it reached vs its holdout, and what that difference means."""

    kind: str
    key: str
    name: str
    holdout_percent: int
    comparison: Comparison


def uplift_from_counts(
    *, kind: str, key: str, name: str, holdout_percent: int, treated: int, treated_converted: int, control: int,
    control_converted: int,
) -> UpliftRow:  # fmt: skip
    """Any treatment/control experiment (a template, a play) as an uplift row: the one place the comparison is
    made, so every experiment reads the same way."""
    return UpliftRow(kind, key, name, holdout_percent, compare(treated_converted, treated, control_converted, control))


def _converted_after(moment: str) -> Exists:
    """Whether the customer's trial converted within UPLIFT_HORIZON after OuterRef(`moment`)."""
    return Exists(
        Trial.objects.filter(
            customer_id=OuterRef("customer_id"),
            converted_at__gte=OuterRef(moment),
            converted_at__lte=ExpressionWrapper(OuterRef(moment) + UPLIFT_HORIZON, output_field=DateTimeField()),
        )
    )


def _in_scope(rows: QuerySet[Any], filters: Filters, now: datetime) -> QuerySet[Any]:
    """Decisions (sends, alerts) made in the date range, for customers whose trials match the other filters."""
    rows = rows.filter(_within_dates("created_at", filters))
    if filters.model or filters.source or filters.plan is not None or filters.segment is not None:
        scoped = Filters(model=filters.model, source=filters.source, plan=filters.plan, segment=filters.segment)
        rows = rows.filter(customer_id__in=filtered_trials(scoped, now).values("customer_id"))
    return rows


def _experiments(rows: QuerySet[Any], *, kind: str, by: str, treated: Q, control: Q) -> list[UpliftRow]:
    """One GROUP BY over a decision log: distinct customers treated and held out per experiment (`by` names the
    template or play relation), and how many of each converted within UPLIFT_HORIZON of the decision."""
    counted = (
        rows.annotate(conv=_converted_after("created_at"))
        .values(f"{by}_id", f"{by}__key", f"{by}__name", f"{by}__holdout_percent")
        .annotate(
            treated=Count("customer_id", distinct=True, filter=treated),
            treated_converted=Count("customer_id", distinct=True, filter=treated & Q(conv=True)),
            control=Count("customer_id", distinct=True, filter=control),
            control_converted=Count("customer_id", distinct=True, filter=control & Q(conv=True)),
        )
        .order_by(f"{by}__name")
    )
    return [
        uplift_from_counts(
            kind=kind,
            key=row[f"{by}__key"],
            name=row[f"{by}__name"],
            holdout_percent=row[f"{by}__holdout_percent"],
            treated=row["treated"],
            treated_converted=row["treated_converted"],
            control=row["control"],
            control_converted=row["control_converted"],
        )
        for row in counted
    ]


def template_uplift(*, filters: Filters, now: datetime | None = None) -> list[UpliftRow]:
    """Per template: distinct customers sent it (treatment) vs logged as its holdout (control), converted within
    30 days of the decision. One query over the send log (suppressed, failed and queued rows are neither)."""
    now = now or timezone.now()
    sent, holdout = Q(status=MessageSend.Status.SENT), Q(status=MessageSend.Status.HOLDOUT)
    sends = _in_scope(MessageSend.objects.filter(sent | holdout), filters, now)
    return _experiments(sends, kind="template", by="template", treated=sent, control=holdout)


def play_uplift(*, filters: Filters, now: datetime | None = None) -> list[UpliftRow]:
    """Per play: distinct customers it alerted a rep about (treatment) vs its holdout alerts (control), converted
    within 30 days of the alert. One query over the alerts; test customers (test-mode plays) are left out."""
    now = now or timezone.now()
    holdout = Q(status=Alert.Status.HOLDOUT)
    alerts = _in_scope(Alert.objects.filter(customer__is_test=False), filters, now)
    return _experiments(alerts, kind="play", by="play", treated=~holdout, control=holdout)


def uplift_report(*, filters: Filters, now: datetime | None = None, plays: bool = True) -> list[UpliftRow]:
    """Every experiment with a control group: lifecycle templates, then sales-assist plays (when the reader may
    see plays)."""
    rows = template_uplift(filters=filters, now=now)
    return rows + play_uplift(filters=filters, now=now) if plays else rows


def experiments_without_holdout(*, plays: bool = True) -> list[str]:
    """Active templates (and plays, when the reader may see plays) that cannot be measured because someone chose
    "no holdout" for them — every other one holds DEFAULT_HOLDOUT_PERCENT out: the uplift page names them."""
    names = list(MessageTemplate.objects.filter(active=True, no_holdout=True).values_list("name", flat=True))
    if plays:
        names += [
            f"play {name}" for name in Play.objects.filter(active=True, no_holdout=True).values_list("name", flat=True)
        ]
    return names


# --- 5. retention -----------------------------------------------------------------------------------------------


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
    recovered_q = lapsed_q & Q(converted_at__gt=F("ends_at"), converted_at__lte=_plus("ends_at", AFTER_TRIAL))
    counts = trials.aggregate(
        lapsed=Count("pk", filter=lapsed_q),
        recovered=Count("pk", filter=recovered_q),
        converted=Count("pk", filter=Q(converted_at__isnull=False)),
    )
    base_sql, base_params = _cte(trials.filter(converted_at__isnull=False).values("id", "started_at", "converted_at"))
    sql = f"""
        WITH base AS ({base_sql}),
        ranked AS (
            SELECT {_days_between_sql("converted_at", "started_at")} AS d,
                   ROW_NUMBER() OVER (ORDER BY {_days_between_sql("converted_at", "started_at")}) AS r,
                   COUNT(*) OVER () AS n
            FROM base
        )
        SELECT MIN(d), MAX(CASE WHEN r = (n + 3) / 4 THEN d END), MAX(CASE WHEN r = (2 * n + 3) / 4 THEN d END),
               MAX(CASE WHEN r = (3 * n + 3) / 4 THEN d END), MAX(d), AVG(d), COUNT(*)
        FROM ranked
    """
    record = _fetch(sql, base_params)[0]
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
