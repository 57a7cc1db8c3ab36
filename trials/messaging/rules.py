"""The rules every send decision applies: the workspace settings, time zones and quiet hours, who qualifies for a
template now (trigger + condition, in SQL), who may be emailed at all, and who has not had a template yet.

The decision paths (trials.messaging.decide), the timers and delivery all read them, so a customer is judged
the same way whichever path reaches them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import (
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce

from audiences.models import Customer, Event
from segments.compiler import compile_tree
from segments.conditions import parse_tree
from segments.models import SegmentMembership, SegmentMembershipChange
from trials.loop.models import Trial
from trials.messaging.holdout import held_out
from trials.messaging.models import EmailSettings, MessageSend, MessageTemplate

#: How long the sweep leaves a customer and template alone after a suppression before deciding again.
RECONSIDER_AFTER = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def email_settings() -> EmailSettings:
    settings_row, _ = EmailSettings.objects.get_or_create(pk=1)
    return settings_row


def in_holdout(template: MessageTemplate, customer_id: int) -> bool:
    """Deterministic per customer and template: the same customer is always in (or out of) the control group."""
    return held_out(template.key, customer_id, template.holdout_percent)


def customer_zone(customer: Customer, default: str) -> ZoneInfo:
    """The customer's time zone (trait timezone or time_zone), else the workspace default."""
    traits = customer.traits or {}
    return zone_named(traits.get("timezone"), traits.get("time_zone"), default)


def zone_named(*names: object) -> ZoneInfo:
    """The first of the names that is a known IANA zone, else UTC."""
    for name in (*names, "UTC"):
        if isinstance(name, str) and name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def allowed_moment(earliest: datetime, zone: ZoneInfo, workspace: EmailSettings, at: dt_time | None = None) -> datetime:
    """The first moment from `earliest` on when an email may go to a customer in `zone`: at `at` o'clock local
    time when the template asks for a time of day, and never in quiet hours (moved to their end)."""
    local = earliest.astimezone(zone)
    if at is not None:
        wanted = datetime.combine(local.date(), at, tzinfo=zone)
        local = wanted if wanted >= local else datetime.combine(local.date() + timedelta(days=1), at, tzinfo=zone)
    if in_quiet_hours(local, workspace.quiet_start_hour, workspace.quiet_end_hour):
        end = local.replace(hour=workspace.quiet_end_hour, minute=0, second=0, microsecond=0)
        local = end if end > local else end + timedelta(days=1)
    return max(earliest, local.astimezone(UTC))


def in_quiet_hours(local: datetime, start: int, end: int) -> bool:
    """Whether a local time falls in [start, end) hours; the range may wrap midnight (21 → 8)."""
    if start == end:
        return False
    if start < end:
        return start <= local.hour < end
    return local.hour >= start or local.hour < end


def trigger_q(template: MessageTemplate, now: datetime, ahead: timedelta = timedelta(0)) -> Q:
    """Customers for whom the template's trigger holds at `now` (set-based, for one query); with `ahead`, those
    for whom a time-based trigger (trial day N, trial ends in N hours) falls due by `now + ahead` (the trial
    still live at `now`). Event and audience triggers fire as they happen, so they are due only when they hold."""
    trigger = MessageTemplate.Trigger
    number = template.trigger_number or 0
    live_trial = Q(trials__is_current=True, trials__ends_at__gt=now, trials__converted_at__isnull=True)
    if template.trigger == trigger.TRIAL_DAY:
        return live_trial & Q(trials__started_at__lte=now + ahead - timedelta(days=number))
    if template.trigger == trigger.TRIAL_ENDS_IN:
        return live_trial & Q(trials__ends_at__lte=now + ahead + timedelta(hours=number))
    if template.trigger == trigger.AUDIENCE:
        if template.trigger_segment_id is None:
            return Q(pk__in=[])
        return Q(
            Exists(SegmentMembership.objects.filter(segment_id=template.trigger_segment_id, customer=OuterRef("pk")))
        )
    hours = number or 24
    return Q(
        Exists(
            Event.objects.filter(
                customer_id=OuterRef("pk"), name=template.trigger_event, timestamp__gt=now - timedelta(hours=hours)
            )
        )
    )


def due_at_expression(template: MessageTemplate, now: datetime) -> Subquery | Value:
    """When the template's trigger falls due for the customer (the outer query's row): N days after the current
    trial started, N hours before it ends; `now` for event and audience triggers, which hold when they fire."""
    number = template.trigger_number or 0
    if template.trigger == MessageTemplate.Trigger.TRIAL_DAY:
        moment = ExpressionWrapper(F("started_at") + timedelta(days=number), output_field=DateTimeField())
    elif template.trigger == MessageTemplate.Trigger.TRIAL_ENDS_IN:
        moment = ExpressionWrapper(F("ends_at") - timedelta(hours=number), output_field=DateTimeField())
    else:
        return Value(now, output_field=DateTimeField())
    trial = Trial.objects.filter(customer_id=OuterRef("pk"), is_current=True).annotate(due=moment)
    return Subquery(trial.values("due")[:1], output_field=DateTimeField())


def qualifying_customers(
    template: MessageTemplate, now: datetime, ahead: timedelta = timedelta(0)
) -> QuerySet[Customer]:
    """The trigger (due by `now + ahead`, see trigger_q) and the template's condition tree at `now`, as one
    queryset."""
    queryset = Customer.objects.filter(trigger_q(template, now, ahead))
    if template.condition:
        queryset = queryset.filter(compile_tree(parse_tree(template.condition), now))
    return queryset


def qualifies(template: MessageTemplate, customer_id: int, now: datetime) -> bool:
    return qualifying_customers(template, now).filter(pk=customer_id).exists()


def send_logged(
    customer: Customer | int, template: MessageTemplate, status: str, reason: str, now: datetime, **extra: Any
) -> MessageSend:
    customer_id = customer if isinstance(customer, int) else customer.pk
    return MessageSend.objects.create(
        customer_id=customer_id, template=template, status=status, reason=reason, created_at=now, **extra
    )


def unsendable_reason(customer: Customer) -> str:
    """Why no email may go to this customer at all (no address, unsubscribed, a test customer), or ""."""
    if not customer.email:
        return "no email address"
    if not customer.has_consent("email"):
        return "no email consent (unsubscribed)"
    if customer.is_test:
        return "test customer"
    return ""


#: Decisions after which the sweep never considers the pair again (for an audience template: until re-entry).
DONE = (
    MessageSend.Status.QUEUED,
    MessageSend.Status.SENT,
    MessageSend.Status.HOLDOUT,
    MessageSend.Status.FAILED,
    MessageSend.Status.DROPPED,
)


def since_entry(rows: QuerySet[MessageSend], template: MessageTemplate) -> QuerySet[MessageSend]:
    """For an "audience entered" template, only the rows since the customer (the outer query's row) last entered
    the audience: leaving and entering again makes the customer eligible once more. A member without a recorded
    entry counts from the beginning of time, so nobody is sent twice for one stay."""
    if template.trigger != MessageTemplate.Trigger.AUDIENCE or template.trigger_segment_id is None:
        return rows
    entered = (
        SegmentMembershipChange.objects.filter(
            segment_id=template.trigger_segment_id,
            customer_id=OuterRef(OuterRef("pk")),
            kind=SegmentMembershipChange.Kind.ENTERED,
        )
        .order_by("-at")
        .values("at")[:1]
    )
    return rows.filter(created_at__gte=Coalesce(Subquery(entered), Value(EPOCH)))


def undecided(
    template: MessageTemplate,
    customers: QuerySet[Customer],
    now: datetime,
    reconsider_after: timedelta = RECONSIDER_AFTER,
) -> QuerySet[Customer]:
    """The customers who have not had the template (DONE — since they last entered the audience, for an audience
    trigger) and were not decided for it within `reconsider_after`."""
    rows = since_entry(MessageSend.objects.filter(template=template, customer=OuterRef("pk")), template)
    already, recently = rows.filter(status__in=DONE), rows.filter(created_at__gt=now - reconsider_after)
    return customers.filter(~Exists(already), ~Exists(recently))
