"""Reads of the offers app: what a session looks like to the product, and the lists and figures staff read."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, DateTimeField, ExpressionWrapper, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from integrations.stripe.models import Subscription
from offers.models import CancellationFlow, CancellationReason, CancellationSession, FlowRule, Offer, OfferRule
from offers.parameters import offer_summary


def flow_reasons(flow: CancellationFlow) -> list[CancellationReason]:
    """The flow's active reasons, in their order."""
    return list(flow.reasons.filter(is_active=True).order_by("position", "pk"))


def offer_payload(offer: Offer) -> dict[str, Any]:
    """An offer as the product shows it: kind, texts, a one-line summary and its parameters."""
    return {
        "id": offer.pk,
        "kind": offer.kind,
        "name": offer.name,
        "headline": offer.headline,
        "body": offer.body,
        "summary": offer_summary(offer.kind, offer.parameters),
        "parameters": offer.parameters,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def session_payload(session: CancellationSession) -> dict[str, Any]:
    """The session's state for the product: where it is, what to ask, what to offer, and how it ended."""
    flow = session.flow
    return {
        "token": session.token,
        "kind": session.kind,
        "is_test": session.is_test,
        "stage": session.stage,
        "outcome": session.outcome,
        "outcome_at": _iso(session.outcome_at),
        "subscription_id": session.subscription.stripe_subscription_id,
        "flow": {
            "id": flow.pk,
            "name": flow.name,
            "ask_feedback": flow.ask_feedback,
            "feedback_prompt": flow.feedback_prompt,
            "confirmation_message": flow.confirmation_message,
            "cancels_at_period_end": not flow.cancel_immediately,
            "feedback_reason_ids": [reason.pk for reason in flow.feedback_reasons.all()],
            "brand_name": flow.brand_name,
            "brand_color": flow.brand_color,
            "logo_url": flow.logo_url or None,
            "language": flow.language or None,
        },
        "reasons": [{"id": reason.pk, "label": reason.label} for reason in flow_reasons(flow)],
        "reason_id": session.reason_id,
        "offer": offer_payload(session.offered_offer) if session.offered_offer else None,
        "accepted_offer_id": session.accepted_offer_id,
        "offer_active_until": _iso(session.offer_active_until),
        "offer_simulated": session.offer_simulated,
        "recovered_subscription_id": session.recovered_subscription_id or None,
    }


def offer_list() -> QuerySet[Offer]:
    return Offer.objects.prefetch_related("tags").order_by("name")


def offer_rule_list() -> QuerySet[OfferRule]:
    """Offer rules in the order they are tried."""
    return OfferRule.objects.prefetch_related("segments", "reasons", "weighted_offers__offer").order_by(
        "position", "pk"
    )


def flow_rule_list() -> QuerySet[FlowRule]:
    """Flow rules in the order they are tried."""
    return FlowRule.objects.select_related("flow").prefetch_related("segments").order_by("position", "pk")


def flow_list() -> QuerySet[CancellationFlow]:
    return CancellationFlow.objects.prefetch_related("reasons", "feedback_reasons").order_by("name")


def session_list(*, filters: ReportFilters, outcome: str = "") -> QuerySet[CancellationSession]:
    """Sessions newest first, with what the list (and its CSV export) shows joined; `filters` narrows them as
    the report's filters do (without a period: every session)."""
    sessions = (
        report_sessions(filters, timezone.now())
        .select_related("customer", "subscription__plan", "flow", "reason", "offered_offer", "accepted_offer")
        .order_by("-created_at", "-pk")
    )
    if outcome:
        sessions = sessions.filter(outcome=outcome)
    return sessions


def session_report(*, since: datetime | None = None, include_test: bool = False) -> dict[str, Any]:
    """Sessions by outcome, save rate (saved ÷ sessions that ended saved or canceled) and MRR saved (the MRR,
    at session start, of the subscriptions an offer kept). One aggregate query."""
    sessions = CancellationSession.objects.all()
    if since is not None:
        sessions = sessions.filter(created_at__gte=since)
    if not include_test:
        sessions = sessions.filter(is_test=False)
    outcome = CancellationSession.Outcome
    totals = sessions.aggregate(
        total=Count("pk"),
        saved=Count("pk", filter=Q(outcome=outcome.SAVED)),
        canceled=Count("pk", filter=Q(outcome=outcome.CANCELED)),
        deflected=Count("pk", filter=Q(outcome=outcome.DEFLECTED)),
        incomplete=Count("pk", filter=Q(outcome=outcome.INCOMPLETE)),
        mrr_saved_cents=Sum("mrr_cents", filter=Q(outcome=outcome.SAVED)),
    )
    decided = totals["saved"] + totals["canceled"]
    return {
        **totals,
        "mrr_saved_cents": totals["mrr_saved_cents"] or 0,
        "save_rate": round(totals["saved"] / decided, 4) if decided else None,
    }


STILL_SAVED_AFTER = timedelta(days=30)
"""A save counts as lasting when the subscription is still running this long after it."""

REPORT_MAX_DAYS = 366


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass(frozen=True)
class DayBucket:
    """One day of the report's chart."""

    day: date
    saved: int
    canceled: int
    deflected: int
    incomplete: int
    recovered: int

    @property
    def total(self) -> int:
        return self.saved + self.canceled + self.deflected + self.incomplete + self.recovered


@dataclass(frozen=True)
class ReportFilters:
    """Which sessions a report (and its CSV export) counts: started in a period — the last `days` days, or the
    calendar days `first_day`…`last_day` — optionally of one flow, one presented offer, one plan."""

    days: int | None = 30
    first_day: date | None = None
    last_day: date | None = None
    flow_id: int | None = None
    offer_id: int | None = None
    plan_id: int | None = None
    include_test: bool = False

    def period(self, now: datetime) -> tuple[date, date]:
        """(first day, last day) of the period, by local calendar day; at most REPORT_MAX_DAYS long."""
        today = timezone.localdate(now)
        if self.first_day is not None:
            last = min(self.last_day or today, today)
            return max(self.first_day, last - timedelta(days=REPORT_MAX_DAYS - 1)), last
        days = max(1, min(self.days or 30, REPORT_MAX_DAYS))
        return today - timedelta(days=days - 1), today

    @property
    def unbounded(self) -> bool:
        """No period chosen: the sessions list then shows every session (a report always has a period)."""
        return self.days is None and self.first_day is None


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


def report_sessions(filters: ReportFilters, now: datetime) -> QuerySet[CancellationSession]:
    """The sessions a report (or the sessions CSV) counts under these filters: started within the period and
    by `now`, test sessions only when asked for."""
    sessions = CancellationSession.objects.all()
    if not filters.unbounded:
        first_day, last_day = filters.period(now)
        sessions = sessions.filter(
            created_at__gte=_day_start(first_day),
            created_at__lt=_day_start(last_day + timedelta(days=1)),
            created_at__lte=now,
        )
    if not filters.include_test:
        sessions = sessions.filter(is_test=False)
    if filters.flow_id is not None:
        sessions = sessions.filter(flow_id=filters.flow_id)
    if filters.offer_id is not None:
        sessions = sessions.filter(offered_offer_id=filters.offer_id)
    if filters.plan_id is not None:
        sessions = sessions.filter(subscription__plan_id=filters.plan_id)
    return sessions


def _breakdown(sessions: QuerySet[CancellationSession], id_key: str, name_key: str) -> list[dict[str, Any]]:
    """Cancellation sessions grouped by one object (a plan, a segment): rows of `id`, `name`, sessions,
    offered, accepted, acceptance rate, saved, canceled, save rate and MRR saved — one aggregate query."""
    outcome = CancellationSession.Outcome
    rows = (
        sessions.filter(kind=CancellationSession.Kind.CANCELLATION)
        .values(id_key, name_key)
        .annotate(
            sessions=Count("pk"),
            offered=Count("pk", filter=Q(offered_offer__isnull=False)),
            accepted=Count("pk", filter=Q(accepted_offer__isnull=False)),
            saved=Count("pk", filter=Q(outcome=outcome.SAVED)),
            canceled=Count("pk", filter=Q(outcome=outcome.CANCELED)),
            mrr_saved_cents=Sum("mrr_cents", filter=Q(outcome=outcome.SAVED), default=0),
        )
        .order_by("-sessions", name_key, id_key)
    )
    return [
        {
            "id": row.pop(id_key),
            "name": row.pop(name_key),
            **row,
            "acceptance_rate": _rate(row["accepted"], row["offered"]),
            "save_rate": _rate(row["saved"], row["saved"] + row["canceled"]),
        }
        for row in rows
    ]


def cancellation_report(
    *,
    days: int = 30,
    now: datetime | None = None,
    include_test: bool = False,
    filters: ReportFilters | None = None,
) -> dict[str, Any]:
    """The retention report over the sessions started in a period (the last `days` days, or `filters`). Six
    aggregate queries whatever the number of sessions — the totals, acceptance by offer, by reason, by plan, by
    segment, and the daily buckets:

    - cancellation sessions by outcome, save rate (saved ÷ (saved + canceled)) and MRR saved (MRR at session
      start of the saved ones);
    - lasting saves: of the saves at least 30 days old, those whose subscription (the billing mirror) is still
      active or trialing and not set to cancel, or whose cancellation came more than 30 days after the save —
      i.e. not canceled 30 days after the save — and their MRR;
    - acceptance by offer (presented, accepted, rate) and by reason (sessions, offered, saved, canceled);
    - by plan and by segment (the customer's current segments): sessions, acceptance, save rate, MRR saved;
    - win-back sessions, recoveries and the MRR they brought back;
    - one bucket per day (sessions by outcome, by start day in the current time zone), empty days included.
    """
    now = now or timezone.now()
    filters = filters or ReportFilters(days=days, include_test=include_test)
    if filters.unbounded:
        filters = replace(filters, days=30)
    first_day, last_day = filters.period(now)
    sessions = report_sessions(filters, now)
    since, until = _day_start(first_day), min(now, _day_start(last_day + timedelta(days=1)))
    days = (last_day - first_day).days + 1
    outcome, kind = CancellationSession.Outcome, CancellationSession.Kind
    cancellation = Q(kind=kind.CANCELLATION)
    saved = cancellation & Q(outcome=outcome.SAVED)
    matured = saved & Q(outcome_at__lte=now - STILL_SAVED_AFTER)
    running = Q(
        subscription__status__in=[Subscription.Status.ACTIVE, Subscription.Status.TRIALING],
        subscription__cancel_at_period_end=False,
    )
    thirty_days_after_save = ExpressionWrapper(F("outcome_at") + STILL_SAVED_AFTER, output_field=DateTimeField())
    lasting = matured & (running | Q(subscription__canceled_at__gt=thirty_days_after_save))
    win_back = Q(kind=kind.WIN_BACK)
    recovered = win_back & Q(outcome=outcome.RECOVERED)
    totals = sessions.aggregate(
        sessions=Count("pk", filter=cancellation),
        saved=Count("pk", filter=saved),
        canceled=Count("pk", filter=cancellation & Q(outcome=outcome.CANCELED)),
        deflected=Count("pk", filter=cancellation & Q(outcome=outcome.DEFLECTED)),
        incomplete=Count("pk", filter=cancellation & Q(outcome=outcome.INCOMPLETE)),
        mrr_saved_cents=Sum("mrr_cents", filter=saved, default=0),
        saves_30d_old=Count("pk", filter=matured),
        still_saved_30d=Count("pk", filter=lasting),
        mrr_still_saved_30d_cents=Sum("mrr_cents", filter=lasting, default=0),
        win_back_sessions=Count("pk", filter=win_back),
        win_back_recovered=Count("pk", filter=recovered),
        win_back_mrr_cents=Sum("mrr_cents", filter=recovered, default=0),
    )
    by_offer = [
        {**row, "acceptance_rate": _rate(row["accepted"], row["presented"])}
        for row in sessions.filter(offered_offer__isnull=False)
        .values("offered_offer_id", "offered_offer__name", "offered_offer__kind")
        .annotate(
            presented=Count("pk"),
            accepted=Count("pk", filter=Q(accepted_offer__isnull=False)),
            mrr_cents=Sum("mrr_cents", filter=Q(accepted_offer__isnull=False), default=0),
        )
        .order_by("-accepted", "-presented", "offered_offer__name")
    ]
    by_reason = [
        {
            **row,
            "acceptance_rate": _rate(row["accepted"], row["offered"]),
            "save_rate": _rate(row["saved"], row["saved"] + row["canceled"]),
        }
        for row in sessions.filter(cancellation, reason__isnull=False)
        .values("reason_id", "reason__label")
        .annotate(
            sessions=Count("pk"),
            offered=Count("pk", filter=Q(offered_offer__isnull=False)),
            accepted=Count("pk", filter=Q(accepted_offer__isnull=False)),
            saved=Count("pk", filter=Q(outcome=outcome.SAVED)),
            canceled=Count("pk", filter=Q(outcome=outcome.CANCELED)),
        )
        .order_by("-sessions", "reason__label")
    ]
    by_plan = _breakdown(sessions, "subscription__plan_id", "subscription__plan__name")
    by_segment = _breakdown(
        sessions.filter(customer__segment_memberships__isnull=False),
        "customer__segment_memberships__segment_id",
        "customer__segment_memberships__segment__name",
    )
    daily_rows = {
        row["day"]: row
        for row in sessions.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(
            saved=Count("pk", filter=Q(outcome=outcome.SAVED)),
            canceled=Count("pk", filter=Q(outcome=outcome.CANCELED)),
            deflected=Count("pk", filter=Q(outcome=outcome.DEFLECTED)),
            incomplete=Count("pk", filter=Q(outcome=outcome.INCOMPLETE)),
            recovered=Count("pk", filter=Q(outcome=outcome.RECOVERED)),
        )
        .order_by("day")
    }
    empty = {"saved": 0, "canceled": 0, "deflected": 0, "incomplete": 0, "recovered": 0}
    daily = []
    for offset in range(days):  # one per day of the period (not per session): fills the days without sessions
        day = first_day + timedelta(days=offset)
        row = daily_rows.get(day, empty)
        daily.append(
            DayBucket(day, row["saved"], row["canceled"], row["deflected"], row["incomplete"], row["recovered"])
        )
    return {
        "days": days,
        "since": since,
        "until": until,
        "filters": filters,
        **totals,
        "save_rate": _rate(totals["saved"], totals["saved"] + totals["canceled"]),
        "still_saved_rate": _rate(totals["still_saved_30d"], totals["saves_30d_old"]),
        "win_back_recovery_rate": _rate(totals["win_back_recovered"], totals["win_back_sessions"]),
        "by_offer": by_offer,
        "by_reason": by_reason,
        "by_plan": by_plan,
        "by_segment": by_segment,
        "daily": daily,
    }


def report_json(report: dict[str, Any]) -> dict[str, Any]:
    """The report as the API answers it (dates as ISO strings, the chart as plain rows)."""
    return {
        **{key: value for key, value in report.items() if key not in ("since", "until", "daily", "filters")},
        "filters": {
            "flow": report["filters"].flow_id,
            "offer": report["filters"].offer_id,
            "plan": report["filters"].plan_id,
            "include_test": report["filters"].include_test,
        },
        "since": report["since"].isoformat(),
        "until": report["until"].isoformat(),
        "daily": [
            {"day": bucket.day.isoformat(), "saved": bucket.saved, "canceled": bucket.canceled,
             "deflected": bucket.deflected, "incomplete": bucket.incomplete, "recovered": bucket.recovered}
            for bucket in report["daily"]
        ],
    }  # fmt: skip
