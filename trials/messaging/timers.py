"""Time-based templates (trial day N, trial ends in N hours): a durable timer per customer (config.timers), armed
for the moment the template falls due — at the template's local time of day, outside quiet hours.

The timers fire :func:`trials.messaging.decide.messages_on_timers`; arming is set-based and idempotent.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db.models import (
    CharField,
    Exists,
    OuterRef,
    Q,
    QuerySet,
    Value,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Concat

from audiences.models import Customer
from config.models import Timer
from config.throttle import throttle_reopens_at
from config.timers import timers_cancel_prefix, timers_schedule
from trials.messaging.models import CustomerMessageLock, EmailSettings, MessageSend, MessageTemplate
from trials.messaging.rules import (
    allowed_moment,
    due_at_expression,
    email_settings,
    qualifying_customers,
    undecided,
    zone_named,
)

#: Triggers that fall due with time alone: decided by a durable timer per customer (see message_timers_arm).
TIME_TRIGGERS = (MessageTemplate.Trigger.TRIAL_DAY, MessageTemplate.Trigger.TRIAL_ENDS_IN)
MESSAGE_TIMER = "trials.message_due"
#: The sweep arms the missing timers of pairs falling due within this long (a safety net: trials created by
#: another path, a condition that came true after the due moment, a pair whose suppression has aged).
ARM_AHEAD = timedelta(hours=1)
#: Customers per arming statement.
ARM_CHUNK = 2000


def timer_prefix(template_id: int) -> str:
    return f"message:{template_id}:"


def _timer_key(template_id: int, customer_id: int) -> str:
    return f"{timer_prefix(template_id)}{customer_id}"


def waiting_timer(template: MessageTemplate) -> QuerySet[Timer]:
    """The customer's (the outer query's row) timer for the template, when it has not fired yet."""
    key = Concat(Value(timer_prefix(template.pk)), Cast(OuterRef("pk"), output_field=CharField()))
    return Timer.objects.filter(key=key, fired_at__isnull=True, failed_at__isnull=True)


def _armed(template: MessageTemplate) -> Exists:
    """Whether the customer (the outer query's row) has a timer for the template that has not fired yet."""
    return Exists(waiting_timer(template))


def _timer_rows(
    template: MessageTemplate, customers: QuerySet[Customer], now: datetime, workspace: EmailSettings, *, again: bool
) -> list[tuple[str, datetime, dict[str, Any]]]:
    """(key, moment, payload) of each customer's timer: the trigger's due moment from the current trial and the
    zone traits, read in one query, moved to the template's local time of day and out of quiet hours
    (allowed_moment: time zones are not SQL that every database shares, so that step is arithmetic on the rows).

    A due moment already past is kept as it is when nothing moves it, so arming again is a no-op
    (timers_schedule) — unless `again` (the sweep re-deciding a pair whose timer fired), which arms it for now."""
    rows = customers.annotate(
        due_at=due_at_expression(template, now), zone=KT("traits__timezone"), zone_alt=KT("traits__time_zone")
    ).values_list("pk", "due_at", "zone", "zone_alt")
    timers: list[tuple[str, datetime, dict[str, Any]]] = []
    for customer_id, due_at, zone, zone_alt in rows.distinct():
        if due_at is None:
            continue
        earliest = max(due_at, now)
        moment = allowed_moment(
            earliest, zone_named(zone, zone_alt, workspace.default_time_zone), workspace, template.send_at_local_time
        )
        if moment == earliest and due_at < now and not again:
            moment = due_at
        timers.append(
            (_timer_key(template.pk, customer_id), moment, {"template": template.pk, "customer": customer_id})
        )
    return timers


def message_timers_arm(
    template: MessageTemplate,
    *,
    now: datetime,
    customer_ids: Collection[int] | None = None,
    ahead: timedelta | None = None,
) -> int:
    """Arm (or move) the template's timers: one per customer with a live trial who has not had it, at the moment
    it falls due for them (see _timer_rows). Set-based: a query and a bulk upsert per ARM_CHUNK customers;
    arming the same moment again is a no-op, so saving a template twice or a batch repeating a trial changes
    nothing. A template that is inactive, in-app or no longer time-based has its timers cancelled instead.

    With `ahead` (the sweep's safety net) only customers whose trigger falls due within it, whose condition
    holds and who have no timer waiting are armed — missing timers, never moved ones."""
    timed = template.trigger in TIME_TRIGGERS and template.channel == MessageTemplate.Channel.EMAIL
    if not (template.active and timed):
        timers_cancel_prefix(timer_prefix(template.pk))
        return 0
    if ahead is None:
        live = Q(trials__is_current=True, trials__ends_at__gt=now, trials__converted_at__isnull=True)
        customers = Customer.objects.filter(live)
    else:
        customers = qualifying_customers(template, now, ahead).filter(~_armed(template))
    customers = undecided(template, customers, now)
    workspace = email_settings()
    again = ahead is not None
    if customer_ids is not None:  # a batch's customers: few, one pass
        rows = _timer_rows(template, customers.filter(pk__in=list(customer_ids)), now, workspace, again=again)
        return timers_schedule(MESSAGE_TIMER, rows, now=now)
    ids = list(customers.order_by("pk").values_list("pk", flat=True).distinct())
    armed = 0
    for start in range(0, len(ids), ARM_CHUNK):
        chunk = Customer.objects.filter(pk__in=ids[start : start + ARM_CHUNK])
        armed += timers_schedule(MESSAGE_TIMER, _timer_rows(template, chunk, now, workspace, again=again), now=now)
    return armed


def retry_rows(
    outcomes: Sequence[MessageSend], templates: dict[int, MessageTemplate], now: datetime
) -> list[tuple[str, datetime, dict[str, Any]]]:
    """Timers again for suppressions of time-based templates that the throttle window or quiet hours explain:
    at the end of the customer's window, at the template's time of day, outside quiet hours. Suppressions for
    other reasons (unsubscribed, no longer qualifies) get none; the sweep reconsiders them. Two queries."""
    suppressed = list(outcomes)
    if not suppressed:
        return []
    customer_ids = {send.customer_id for send in suppressed}
    last_sent = dict(
        CustomerMessageLock.objects.filter(customer_id__in=customer_ids).values_list("customer_id", "last_sent_at")
    )
    zones = {
        pk: (zone, alt)
        for pk, zone, alt in Customer.objects.filter(pk__in=customer_ids)
        .annotate(zone=KT("traits__timezone"), zone_alt=KT("traits__time_zone"))
        .values_list("pk", "zone", "zone_alt")
    }
    workspace = email_settings()
    rows = []
    for send in suppressed:
        template = templates[send.template_id]
        last = last_sent.get(send.customer_id)
        window = timedelta(hours=template.throttle_hours or workspace.throttle_hours)
        earliest = throttle_reopens_at(last, window=window, now=now)
        zone = zone_named(*zones.get(send.customer_id, ()), workspace.default_time_zone)
        moment = allowed_moment(earliest, zone, workspace, template.send_at_local_time)
        if moment > now:
            key = _timer_key(template.pk, send.customer_id)
            rows.append((key, moment, {"template": template.pk, "customer": send.customer_id}))
    return rows
