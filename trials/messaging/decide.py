"""The send decision: one customer and template (:func:`message_send`), and a customer's candidates in priority
order (:func:`messages_decide`) whichever path found them — the sweep, a real-time trigger or a timer.

Every outcome is logged as a MessageSend row — sent, or suppressed/holdout with its reason. The throttle is
decided under a row lock on the customer's CustomerMessageLock, so two workers never both send inside the
window. A less important email yields (waits, or is dropped) when a more important one is due for the customer
within the workspace's priority window. The 5-minute sweep is the safety net: it decides what the real-time
paths missed and arms missing timers.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import (
    DateTimeField,
    Exists,
    OuterRef,
    Subquery,
)
from django.db.models.functions import Coalesce
from django.template import TemplateSyntaxError
from django.utils import timezone

from audiences.models import Customer
from config.throttle import throttle_slot
from config.timers import DueTimer, timers_schedule
from trials.messaging.delivery import deliver_message
from trials.messaging.models import CustomerMessageLock, MessageSend, MessageTemplate
from trials.messaging.render import message_context, message_render, render_refusal
from trials.messaging.rules import (
    RECONSIDER_AFTER,
    customer_zone,
    due_at_expression,
    email_settings,
    in_holdout,
    in_quiet_hours,
    qualifies,
    qualifying_customers,
    send_logged,
    undecided,
    unsendable_reason,
)
from trials.messaging.timers import (
    ARM_AHEAD,
    MESSAGE_TIMER,
    TIME_TRIGGERS,
    message_timers_arm,
    retry_rows,
    waiting_timer,
)


def message_send(*, customer_id: int, template_id: int, now: datetime | None = None) -> MessageSend:
    """Decide whether one customer gets one email template now; log the outcome and queue the delivery.

    In order: active and an email template; consent; still qualifies (trigger + condition); quiet hours in the
    customer's zone; then, under the customer's lock row, the throttle window and holdout. A holdout counts
    against the window like a send, so the control group gets the same number of messages minus this one.
    """
    now = now or timezone.now()
    template = MessageTemplate.objects.get(pk=template_id)
    customer = Customer.objects.get(pk=customer_id)
    suppressed = MessageSend.Status.SUPPRESSED
    if template.channel != MessageTemplate.Channel.EMAIL:
        raise ValueError("Only email templates are sent by message_send.")
    if not template.active:
        return send_logged(customer, template, suppressed, "template inactive", now)
    reason = unsendable_reason(customer)
    if reason:
        return send_logged(customer, template, suppressed, reason, now)
    if not qualifies(template, customer.pk, now):
        return send_logged(customer, template, suppressed, "no longer qualifies", now)
    workspace = email_settings()
    local = now.astimezone(customer_zone(customer, workspace.default_time_zone))
    if in_quiet_hours(local, workspace.quiet_start_hour, workspace.quiet_end_hour):
        return send_logged(customer, template, suppressed, f"quiet hours ({local:%H:%M} {local.tzinfo})", now)
    try:
        rendered = message_render(template, message_context(customer, now))
    except TemplateSyntaxError as refused:  # stored without validation (admin, SQL): never takes the window
        return send_logged(customer, template, MessageSend.Status.FAILED, render_refusal(refused), now)
    window = timedelta(hours=template.throttle_hours or workspace.throttle_hours)
    with throttle_slot(CustomerMessageLock, customer.pk, field="last_sent_at", window=window, now=now) as slot:
        if not slot.open:
            return send_logged(
                customer, template, suppressed, f"throttled (last at {slot.last_at:%Y-%m-%d %H:%M})", now
            )
        slot.take()
        if in_holdout(template, customer.pk):
            return send_logged(
                customer, template, MessageSend.Status.HOLDOUT, f"holdout {template.holdout_percent}%", now
            )
        send = send_logged(
            customer, template, MessageSend.Status.QUEUED, "", now, to_email=customer.email, subject=rendered.subject
        )
        transaction.on_commit(lambda: deliver_message.delay(send.pk))
    return send


@dataclass(frozen=True)
class Due:
    """A more important template due for a customer soon: what a less important one yields to."""

    template: MessageTemplate
    at: datetime


#: Decisions that say "not now, because a more important email is due": the customer was not decided for.
YIELDED = (MessageSend.Status.DEFERRED, MessageSend.Status.DROPPED)


def message_candidates(
    templates: Iterable[MessageTemplate],
    now: datetime,
    customer_ids: Collection[int] | None = None,
    reconsider_after: timedelta = RECONSIDER_AFTER,
) -> dict[int, list[int]]:
    """Customer → the email templates whose trigger and condition hold for them now and that they have not had
    (see undecided). One query per template; restricted to `customer_ids` when a batch, an audience change or
    a timer names them."""
    candidates: dict[int, list[int]] = {}
    for template in templates:
        queryset = undecided(template, qualifying_customers(template, now), now, reconsider_after)
        if customer_ids is not None:
            queryset = queryset.filter(pk__in=list(customer_ids))
        for customer_id in queryset.values_list("pk", flat=True).distinct():
            candidates.setdefault(customer_id, []).append(template.pk)
    return candidates


def _rank(template: MessageTemplate) -> tuple[int, int]:
    """Lower first: the priority number, then the older template."""
    return template.priority, template.pk


def messages_due_ahead(customer_ids: Collection[int], *, up_to: MessageTemplate, now: datetime) -> dict[int, Due]:
    """Customer → the most important active email template (ranked at most `up_to`) that is due for them within
    the workspace's priority window and that they have not had: what a less important email decided now must
    yield to. A time-based template is due when its trigger is and its timer (if armed) is within the window —
    the timer knows the local time of day, quiet hours and throttle windows. One query per template at most
    (`up_to` and those before it), over the named customers only."""
    window = timedelta(minutes=email_settings().priority_window_minutes)
    if not window or not customer_ids:
        return {}
    found: dict[int, Due] = {}
    remaining = set(customer_ids)
    templates = MessageTemplate.objects.filter(
        active=True, channel=MessageTemplate.Channel.EMAIL, priority__lte=up_to.priority
    ).order_by("priority", "pk")
    for template in templates:
        if not remaining or _rank(template) > _rank(up_to):
            break
        due = undecided(template, qualifying_customers(template, now, window), now).filter(pk__in=list(remaining))
        moment: Any = due_at_expression(template, now)
        if template.trigger in TIME_TRIGGERS:
            # Its timer says when it really goes (a local time of day, after quiet hours or a throttle window).
            timer = waiting_timer(template)
            due = due.filter(~Exists(timer.filter(due_at__gt=now + window)))
            moment = Coalesce(Subquery(timer.values("due_at")[:1]), moment, output_field=DateTimeField())
        for customer_id, at in due.annotate(due_at=moment).values_list("pk", "due_at").distinct():
            found[customer_id] = Due(template, at)
            remaining.discard(customer_id)
    return found


def _yield(customer_id: int, template: MessageTemplate, ahead: Due, now: datetime) -> MessageSend:
    """Log that the template gave way to a more important one due soon: deferred or dropped, as it asks."""
    status = (
        MessageSend.Status.DROPPED
        if template.when_outranked == MessageTemplate.WhenOutranked.DROP
        else MessageSend.Status.DEFERRED
    )
    at = ahead.at.astimezone(UTC)
    reason = f"yields to {ahead.template.key} (priority {ahead.template.priority}), due {at:%Y-%m-%d %H:%M} UTC"
    return send_logged(customer_id, template, status, reason, now)


def _decide_round(
    candidates: dict[int, list[int]], now: datetime, losers: list[MessageSend] | None = None
) -> list[MessageSend]:
    """One decision per customer: the most important of their templates, unless a more important one is due
    soon (then all of them yield); the others are logged as lower priority (and collected in `losers`)."""
    wanted = {pk for template_ids in candidates.values() for pk in template_ids}
    templates = {template.pk: template for template in MessageTemplate.objects.filter(pk__in=wanted)}
    if not templates:
        return []
    ahead = messages_due_ahead(list(candidates), up_to=max(templates.values(), key=_rank), now=now)
    outcomes: list[MessageSend] = []
    for customer_id, template_ids in candidates.items():
        ordered = sorted((templates[pk] for pk in template_ids if pk in templates), key=_rank)
        winner, due = ordered[0], ahead.get(customer_id)
        if due is not None and _rank(due.template) < _rank(winner):
            outcomes.append(_yield(customer_id, winner, due, now))
            for template in ordered[1:]:
                _yield(customer_id, template, due, now)
            continue
        for template in ordered[1:]:
            lost = send_logged(
                customer_id, template, MessageSend.Status.SUPPRESSED, f"lower priority than {winner.key}", now
            )
            if losers is not None:
                losers.append(lost)
        outcomes.append(message_send(customer_id=customer_id, template_id=winner.pk, now=now))
    return outcomes


def _waiting(customer_ids: Collection[int]) -> dict[int, list[int]]:
    """Customer → templates deferred for them and not decided since (one query)."""
    later = MessageSend.objects.filter(
        customer_id=OuterRef("customer_id"), template_id=OuterRef("template_id"), pk__gt=OuterRef("pk")
    )
    rows = MessageSend.objects.filter(customer_id__in=list(customer_ids), status=MessageSend.Status.DEFERRED)
    waiting: dict[int, list[int]] = {}
    for customer_id, template_id in rows.filter(~Exists(later)).values_list("customer_id", "template_id").distinct():
        waiting.setdefault(customer_id, []).append(template_id)
    return waiting


def messages_decide(candidates: dict[int, list[int]], now: datetime) -> list[MessageSend]:
    """Decide each customer's candidate templates, whichever path found them (the sweep, a real-time trigger),
    by the same rule: a customer's emails go in priority order, also against emails due within the priority
    window. Once a customer was decided for, the templates that waited for that decision are decided again
    (they are usually throttled then). A time-based template that lost to the throttle window, quiet hours or a
    more important email has its timer armed for when the window or the quiet hours end; an event or audience
    template is reconsidered by the sweep. Returns one decision per customer and round."""
    losers: list[MessageSend] = []
    outcomes = _decide_round(candidates, now, losers)
    decided = [send.customer_id for send in outcomes if send.status not in YIELDED]
    waiting = _waiting(decided) if decided else {}
    outcomes += _decide_round(waiting, now, losers) if waiting else []
    suppressed = [send for send in [*outcomes, *losers] if send.status == MessageSend.Status.SUPPRESSED]
    if suppressed:
        timed = MessageTemplate.objects.filter(
            pk__in={send.template_id for send in suppressed}, trigger__in=TIME_TRIGGERS
        )
        templates = {template.pk: template for template in timed}
        retry = [send for send in suppressed if send.template_id in templates]
        timers_schedule(MESSAGE_TIMER, retry_rows(retry, templates, now), now=now)
    return outcomes


def _counts(outcomes: Iterable[MessageSend]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for send in outcomes:
        counts[send.status] = counts.get(send.status, 0) + 1
    return counts


def messages_dispatch(*, customer_id: int, template_ids: Sequence[int], now: datetime | None = None) -> MessageSend:
    """Several templates qualify for one customer at once: the decision (see messages_decide) for the most
    important one — sent, suppressed, or yielding to an email due soon; the rest are logged."""
    now = now or timezone.now()
    return messages_decide({customer_id: list(template_ids)}, now)[0]


def messages_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Periodic safety net: every active event and audience email template's qualifying customers who have not
    had it yet, one query each, decided now; for time-based templates, the missing timers of the pairs due
    within ARM_AHEAD are armed (the timers decide them, on time and at the customer's time of day).

    A customer who was already sent (or held out of, or failed, or dropped) a template is not considered for it
    again; after a suppression (throttled, quiet hours, lower priority) or a deferral the pair is reconsidered
    once RECONSIDER_AFTER has passed, so the log gets at most one row per customer and template per hour.
    """
    now = now or timezone.now()
    templates = list(MessageTemplate.objects.filter(active=True, channel=MessageTemplate.Channel.EMAIL))
    realtime = [template for template in templates if template.trigger not in TIME_TRIGGERS]
    counts = _counts(messages_decide(message_candidates(realtime, now), now))
    armed = sum(message_timers_arm(t, now=now, ahead=ARM_AHEAD) for t in templates if t.trigger in TIME_TRIGGERS)
    return {**counts, "armed": armed} if armed else counts


def messages_trigger(
    *, customer_ids: Collection[int], template_ids: Collection[int], now: datetime | None = None
) -> dict[str, int]:
    """Real time: the named templates for the named customers, decided as the sweep would (same candidates,
    same priority against emails due soon, throttle and suppression), so an event or an audience entry sends
    within seconds."""
    now = now or timezone.now()
    templates = MessageTemplate.objects.filter(
        pk__in=list(template_ids), active=True, channel=MessageTemplate.Channel.EMAIL
    )
    return _counts(messages_decide(message_candidates(templates, now, customer_ids), now))


def messages_on_timers(timers: Sequence[DueTimer]) -> None:
    """Timer handler (kind MESSAGE_TIMER): the time-based templates that just fell due, decided now for the named
    customers exactly as every other path decides (messages_decide), inside the transaction that marks the
    timers fired. Idempotent: a pair already had is not a candidate. A decision lost to the throttle window or
    quiet hours arms the timer again for when they end (messages_decide)."""
    now = timezone.now()
    wanted: dict[int, set[int]] = {}
    for timer in timers:
        wanted.setdefault(int(timer.payload["template"]), set()).add(int(timer.payload["customer"]))
    templates = {
        template.pk: template
        for template in MessageTemplate.objects.filter(
            pk__in=list(wanted), active=True, channel=MessageTemplate.Channel.EMAIL, trigger__in=TIME_TRIGGERS
        )
    }
    candidates: dict[int, list[int]] = {}
    for template in templates.values():
        found = message_candidates([template], now, wanted[template.pk], reconsider_after=timedelta(0))
        for customer_id, template_ids in found.items():
            candidates.setdefault(customer_id, []).extend(template_ids)
    messages_decide(candidates, now)
