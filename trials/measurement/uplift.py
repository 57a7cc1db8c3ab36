"""Holdout uplift: each email template's and play's conversion among the customers it reached against its
holdout (control) group, with confidence intervals, so a team sees what actually moved conversion.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import (
    Count,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    OuterRef,
    Q,
    QuerySet,
)
from django.utils import timezone

from trials.loop.models import Trial
from trials.measurement.scope import UPLIFT_HORIZON, Filters, filtered_trials, within_dates
from trials.measurement.stats import Comparison, compare
from trials.messaging.models import MessageSend, MessageTemplate
from trials.plays.models import Alert, Play


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
    rows = rows.filter(within_dates("created_at", filters))
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
