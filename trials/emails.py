"""Lifecycle messages: sandboxed templates, the throttled send decision, delivery and the trigger sweep.

Templates are Django template language rendered in a sandbox (trials.message_sandbox: an engine that knows only
a few tags and filters, no loaders, autoescaping in the HTML body) over a fixed set of plain variables. Every
variable a template uses is checked when it is saved (:func:`template_errors` walks the parsed nodes), so a
typo is a form error, not a failed send; a text that reached the database some other way and uses anything
else fails its send with the reason.

The send decision (:func:`message_send`) logs every outcome as a MessageSend row — sent, or suppressed/holdout
with its reason. The throttle is decided under a row lock on the customer's CustomerMessageLock, so two
workers never both send inside the window. Every path decides through :func:`messages_decide`, so a customer's
emails go in priority order wherever they come from: a less important email yields (waits, or is dropped) when
a more important one is due for the customer within the workspace's priority window.

"Event performed" and "audience entered" templates are decided in real time: a stored-batch hook and an
audience-enter hook queue the decision for the customers concerned (:func:`messages_on_batch`,
:func:`messages_on_audience_enter`, :func:`messages_trigger`). Time-based templates (trial day N, trial ends in
N hours) are decided by a durable timer per customer (config.timers) at the moment they fall due — at the
template's local time of day, outside quiet hours (:func:`message_timers_arm`, :func:`messages_on_timers`).
The 5-minute sweep is the safety net of both: it decides what the real-time paths missed and arms missing timers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import (
    CharField,
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
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, Concat
from django.template import Context, TemplateSyntaxError
from django.template.base import FilterExpression, Node, TextNode, Variable, VariableNode
from django.template.defaultfilters import register as default_filters
from django.template.defaulttags import CommentNode, IfNode
from django.urls import reverse
from django.utils import timezone

from audiences.models import ComputedTrait, ComputedTraitValue, Customer, Event
from audiences.pipeline import BatchFacts
from config.models import Timer
from config.timers import DueTimer, timers_cancel_prefix, timers_schedule
from segments.compiler import compile_tree
from segments.conditions import parse_tree
from segments.models import Segment, SegmentMembership, SegmentMembershipChange
from trials.holdout import held_out, holdout_errors
from trials.message_sandbox import ALLOWED_FILTERS, ALLOWED_TAGS, EXPLAINING, SANDBOX
from trials.models import (
    ActivationDefinition,
    CustomerMessageLock,
    EmailSettings,
    MessageSend,
    MessageTemplate,
    Trial,
)

logger = logging.getLogger(__name__)

UNSUBSCRIBE_SALT = "trials.emails.unsubscribe"
#: How long the sweep leaves a customer and template alone after a suppression before deciding again.
RECONSIDER_AFTER = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The variables a template may use. `traits.<key>` reads a profile trait, `computed.<key>` a computed trait
#: (the key must exist); the others are plain values.
VARIABLES: dict[str, str] = {
    "first_name": "First name (trait first_name, else the first word of the name)",
    "name": "Full name",
    "email": "Email address",
    "company": "Company (trait company, else the account's name)",
    "value_moment": "What the product calls its value moment (trait value_moment, else the activation event)",
    "trial_day": "Day of the trial (1 on the first day)",
    "trial_days_left": "Whole days until the trial ends",
    "trial_hours_left": "Whole hours until the trial ends",
    "trial_ends_at": "When the trial ends",
    "trial_stage": "The trial's stage",
    "pql_score": "PQL score (0-100)",
    "fit_score": "Fit score (0-100)",
    "unsubscribe_url": "The signed one-click unsubscribe link",
    "traits": "traits.<key>: a profile trait",
    "computed": "computed.<key>: a computed trait (usage counts and the like)",
}
_NAMESPACES = {"traits", "computed"}
#: Triggers that fall due with time alone: decided by a durable timer per customer (see message_timers_arm).
TIME_TRIGGERS = (MessageTemplate.Trigger.TRIAL_DAY, MessageTemplate.Trigger.TRIAL_ENDS_IN)
MESSAGE_TIMER = "trials.message_due"
#: The sweep arms the missing timers of pairs falling due within this long (a safety net: trials created by
#: another path, a condition that came true after the due moment, a pair whose suppression has aged).
ARM_AHEAD = timedelta(hours=1)
#: Customers per arming statement.
ARM_CHUNK = 2000
_FILTERS = {default_filters.filters[name]: name for name in ALLOWED_FILTERS}


# ---------------------------------------------------------------------------------------------------------------
# Templates: validation and rendering


def _expression_errors(expression: FilterExpression, computed_keys: set[str]) -> list[str]:
    errors: list[str] = []
    for func, _args in expression.filters:
        if func not in _FILTERS:
            errors.append(f"Filter {getattr(func, '__name__', func)!r} is not allowed.")
    var = expression.var
    if not isinstance(var, Variable) or var.lookups is None:
        return errors  # a literal
    head, rest = var.lookups[0], var.lookups[1:]
    if head not in VARIABLES:
        errors.append(f"Unknown variable {var.var!r}.")
    elif head in _NAMESPACES:
        if len(rest) != 1:
            errors.append(f"Use {head}.<key> (one key) — {var.var!r}.")
        elif head == "computed" and rest[0] not in computed_keys:
            errors.append(f"No computed trait with the key {rest[0]!r}.")
    elif rest:
        errors.append(f"{head!r} has no attributes — {var.var!r}.")
    return errors


def _condition_expressions(condition: Any) -> Iterable[FilterExpression]:
    """The filter expressions inside an {% if %} condition (a literal, or an operator over two sides)."""
    if condition is None:
        return
    value = getattr(condition, "value", None)
    if isinstance(value, FilterExpression):
        yield value
    for side in ("first", "second"):
        yield from _condition_expressions(getattr(condition, side, None))


def _node_errors(nodes: Iterable[Node], computed_keys: set[str]) -> list[str]:
    errors: list[str] = []
    for node in nodes:
        if isinstance(node, TextNode | CommentNode):
            continue
        if isinstance(node, VariableNode):
            errors += _expression_errors(node.filter_expression, computed_keys)
        elif isinstance(node, IfNode):
            for condition, nodelist in node.conditions_nodelists:
                for expression in _condition_expressions(condition):
                    errors += _expression_errors(expression, computed_keys)
                errors += _node_errors(nodelist, computed_keys)
        else:
            token = getattr(node, "token", None)
            name = token.split_contents()[0] if token is not None else type(node).__name__
            errors.append(f"The tag {name!r} is not allowed (only {', '.join(ALLOWED_TAGS)}).")
    return errors


def template_errors(source: str, *, computed_keys: set[str] | None = None) -> list[str]:
    """What is wrong with one template text: syntax, unknown variables, tags or filters (empty when fine)."""
    if computed_keys is None:
        computed_keys = set(ComputedTrait.objects.values_list("key", flat=True))
    try:
        template = EXPLAINING.from_string(source)
    except TemplateSyntaxError as exc:
        return [f"Syntax error: {exc}"]
    return _node_errors(template.nodelist, computed_keys)


def message_template_validate(template: MessageTemplate) -> None:
    """Raise ValidationError (per field) when a template text or the trigger settings are not usable."""
    keys = set(ComputedTrait.objects.values_list("key", flat=True))
    errors: dict[str, list[str]] = {}
    for field in ("subject", "html_body", "text_body"):
        found = template_errors(getattr(template, field), computed_keys=keys)
        if found:
            errors[field] = found
    if template.channel == MessageTemplate.Channel.EMAIL and not template.subject.strip():
        errors.setdefault("subject", []).append("An email needs a subject.")
    trigger = MessageTemplate.Trigger
    if template.trigger == trigger.EVENT and not template.trigger_event:
        errors.setdefault("trigger_event", []).append("Name the event.")
    if template.trigger == trigger.AUDIENCE and template.trigger_segment_id is None:
        errors.setdefault("trigger_segment", []).append("Choose the audience.")
    if template.trigger in TIME_TRIGGERS and template.trigger_number is None:
        errors.setdefault("trigger_number", []).append("Give N.")
    if template.send_at_local_time is not None and template.trigger not in TIME_TRIGGERS:
        errors.setdefault("send_at_local_time", []).append(
            "Only trial day N and trial ends in N hours have a time of day; events and audiences send as they happen."
        )
    if template.condition:
        try:
            parse_tree(template.condition)
        except ValueError as exc:
            errors.setdefault("condition", []).append(str(exc))
    for field, found in holdout_errors(template.holdout_percent, no_holdout=template.no_holdout).items():
        errors.setdefault(field, []).extend(found)
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def message_template_save(template: MessageTemplate) -> MessageTemplate:
    """Validate, then save: the one door for creating and editing templates."""
    message_template_validate(template)
    template.save()
    event_templates_forget()
    message_timers_arm(template, now=timezone.now())
    return template


def message_template_duplicate(template: MessageTemplate) -> MessageTemplate:
    """A copy to experiment on, inactive so it cannot send until someone reviews it; the key gets a free
    `-copy`, `-copy-2`, … suffix because keys are unique."""
    base = f"{template.key}-copy"[:90]
    taken = set(MessageTemplate.objects.filter(key__startswith=base).values_list("key", flat=True))
    key = base
    number = 2
    while key in taken:
        key, number = f"{base}-{number}", number + 1
    copy = MessageTemplate.objects.get(pk=template.pk)
    copy.pk = None
    copy.key, copy.name, copy.active = key, f"Copy of {template.name}"[:255], False
    return message_template_save(copy)


def message_template_delete(template: MessageTemplate) -> int:
    """Delete a template and its send log rows (they only make sense with it); returns how many rows went.
    Deactivating keeps the log — the page says so before anyone confirms."""
    timers_cancel_prefix(_timer_prefix(template.pk))
    _, removed = template.delete()  # the send log goes with it (CASCADE)
    event_templates_forget()
    return removed.get(MessageSend._meta.label, 0)


@transaction.atomic
def email_settings_save(workspace: EmailSettings, priorities: dict[int, int]) -> EmailSettings:
    """Save the workspace rules and the templates' priority order together, so the page never half-applies; the
    time-based templates' timers move with the quiet hours and the default zone."""
    workspace.save()
    # Saved one by one, not with update(): a priority change is a configuration change the audit log records.
    for template in MessageTemplate.objects.filter(pk__in=priorities):
        if template.priority != priorities[template.pk]:
            template.priority = priorities[template.pk]
            template.save(update_fields=["priority"])
    now = timezone.now()
    for template in MessageTemplate.objects.filter(active=True, trigger__in=TIME_TRIGGERS):
        message_timers_arm(template, now=now)
    return workspace


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    html: str
    text: str


def unsubscribe_token(customer: Customer) -> str:
    return signing.dumps({"c": customer.pk}, salt=UNSUBSCRIBE_SALT)


def unsubscribe_customer_id(token: str) -> int | None:
    """The customer a token was signed for, or None when it is forged or damaged."""
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return None
    value = data.get("c") if isinstance(data, dict) else None
    return value if isinstance(value, int) else None


def unsubscribe_url(customer: Customer) -> str:
    base = str(settings.TRIALLOOP_PUBLIC_URL).rstrip("/")
    return base + reverse("email-unsubscribe", args=[unsubscribe_token(customer)])


def message_context(customer: Customer, now: datetime | None = None) -> dict[str, Any]:
    """The fixed variable set for one customer (see VARIABLES)."""
    now = now or timezone.now()
    return customer_variables(
        customer,
        trial=Trial.objects.filter(customer=customer, is_current=True).first(),
        definition=ActivationDefinition.objects.filter(pk=1).first(),
        computed=dict(ComputedTraitValue.objects.filter(customer=customer).values_list("trait__key", "value")),
        unsubscribe=unsubscribe_url(customer) if customer.pk else "",
        now=now,
    )


def customer_variables(
    customer: Customer,
    *,
    trial: Trial | None,
    definition: ActivationDefinition | None,
    computed: dict[str, Any],
    unsubscribe: str,
    now: datetime,
) -> dict[str, Any]:
    """VARIABLES from facts already fetched: the one definition of their names and meaning, for lifecycle
    messages and for reps' briefs (which fetch the facts of many alerts at once)."""
    traits: dict[str, Any] = dict(customer.traits or {})
    context: dict[str, Any] = {
        "first_name": traits.get("first_name") or (customer.name.split()[0] if customer.name.strip() else ""),
        "name": customer.name,
        "email": customer.email,
        "company": traits.get("company") or (customer.account.name if customer.account_id and customer.account else ""),
        "value_moment": traits.get("value_moment") or (definition.activation_event if definition else ""),
        "trial_day": None,
        "trial_days_left": None,
        "trial_hours_left": None,
        "trial_ends_at": None,
        "trial_stage": "",
        "pql_score": None,
        "fit_score": None,
        "unsubscribe_url": unsubscribe,
        "traits": traits,
        "computed": computed,
    }
    if trial is not None:
        context.update(trial_variables(trial, now))
    return context


def trial_variables(trial: Trial, now: datetime) -> dict[str, Any]:
    """The trial's template variables (day N, days and hours left, stage, scores): one definition for lifecycle
    messages and the reps' briefs, so a template reads the same numbers wherever it is rendered."""
    left = trial.ends_at - now
    return {
        "trial_day": max(1, (now - trial.started_at).days + 1),
        "trial_days_left": max(0, left.days),
        "trial_hours_left": max(0, int(left.total_seconds() // 3600)),
        "trial_ends_at": trial.ends_at,
        "trial_stage": trial.get_stage_display(),
        "pql_score": trial.pql_score,
        "fit_score": trial.fit_score,
    }


def message_render(template: MessageTemplate, context: dict[str, Any]) -> RenderedMessage:
    """Subject and text unescaped (they are not HTML), the HTML body autoescaped.

    Raises TemplateSyntaxError for a text using anything outside the sandbox's whitelist."""

    def render(source: str, *, autoescape: bool) -> str:
        # Template.render returns a SafeString; a plain str keeps the output escaped wherever it is shown
        # again (the preview page), so a trait value cannot inject markup into the staff UI.
        return str.__str__(SANDBOX.from_string(source).render(Context(context, autoescape=autoescape)))

    subject = " ".join(render(template.subject, autoescape=False).split())
    return RenderedMessage(
        subject=subject,
        html=render(template.html_body, autoescape=True),
        text=render(template.text_body, autoescape=False),
    )


def render_refusal(refused: TemplateSyntaxError) -> str:
    """The logged reason of a template the sandbox refused to render."""
    return f"The template is not allowed: {refused}"[:255]


def message_preview(template: MessageTemplate, customer: Customer) -> RenderedMessage:
    """The template as this customer would receive it now."""
    return message_render(template, message_context(customer))


# ---------------------------------------------------------------------------------------------------------------
# The send decision


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


def _trigger_q(template: MessageTemplate, now: datetime, ahead: timedelta = timedelta(0)) -> Q:
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


def _due_at(template: MessageTemplate, now: datetime) -> Subquery | Value:
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
    """The trigger (due by `now + ahead`, see _trigger_q) and the template's condition tree at `now`, as one
    queryset."""
    queryset = Customer.objects.filter(_trigger_q(template, now, ahead))
    if template.condition:
        queryset = queryset.filter(compile_tree(parse_tree(template.condition), now))
    return queryset


def qualifies(template: MessageTemplate, customer_id: int, now: datetime) -> bool:
    return qualifying_customers(template, now).filter(pk=customer_id).exists()


def _log(
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
        return _log(customer, template, suppressed, "template inactive", now)
    reason = unsendable_reason(customer)
    if reason:
        return _log(customer, template, suppressed, reason, now)
    if not qualifies(template, customer.pk, now):
        return _log(customer, template, suppressed, "no longer qualifies", now)
    workspace = email_settings()
    local = now.astimezone(customer_zone(customer, workspace.default_time_zone))
    if in_quiet_hours(local, workspace.quiet_start_hour, workspace.quiet_end_hour):
        return _log(customer, template, suppressed, f"quiet hours ({local:%H:%M} {local.tzinfo})", now)
    try:
        rendered = message_render(template, message_context(customer, now))
    except TemplateSyntaxError as refused:  # stored without validation (admin, SQL): never takes the window
        return _log(customer, template, MessageSend.Status.FAILED, render_refusal(refused), now)
    window = timedelta(hours=template.throttle_hours or workspace.throttle_hours)
    CustomerMessageLock.objects.get_or_create(customer=customer)
    with transaction.atomic():
        lock = CustomerMessageLock.objects.select_for_update().get(pk=customer.pk)
        if lock.last_sent_at is not None and lock.last_sent_at > now - window:
            return _log(customer, template, suppressed, f"throttled (last at {lock.last_sent_at:%Y-%m-%d %H:%M})", now)
        lock.last_sent_at = now
        lock.save(update_fields=["last_sent_at"])
        if in_holdout(template, customer.pk):
            return _log(customer, template, MessageSend.Status.HOLDOUT, f"holdout {template.holdout_percent}%", now)
        send = _log(
            customer, template, MessageSend.Status.QUEUED, "", now, to_email=customer.email, subject=rendered.subject
        )
        from trials.tasks import deliver_message

        transaction.on_commit(lambda: deliver_message.delay(send.pk))
    return send


@dataclass(frozen=True)
class Due:
    """A more important template due for a customer soon: what a less important one yields to."""

    template: MessageTemplate
    at: datetime


#: Decisions that say "not now, because a more important email is due": the customer was not decided for.
YIELDED = (MessageSend.Status.DEFERRED, MessageSend.Status.DROPPED)
#: Decisions after which the sweep never considers the pair again (for an audience template: until re-entry).
DONE = (
    MessageSend.Status.QUEUED,
    MessageSend.Status.SENT,
    MessageSend.Status.HOLDOUT,
    MessageSend.Status.FAILED,
    MessageSend.Status.DROPPED,
)


def _since_entry(rows: QuerySet[MessageSend], template: MessageTemplate) -> QuerySet[MessageSend]:
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


def _undecided(
    template: MessageTemplate,
    customers: QuerySet[Customer],
    now: datetime,
    reconsider_after: timedelta = RECONSIDER_AFTER,
) -> QuerySet[Customer]:
    """The customers who have not had the template (DONE — since they last entered the audience, for an audience
    trigger) and were not decided for it within `reconsider_after`."""
    rows = _since_entry(MessageSend.objects.filter(template=template, customer=OuterRef("pk")), template)
    already, recently = rows.filter(status__in=DONE), rows.filter(created_at__gt=now - reconsider_after)
    return customers.filter(~Exists(already), ~Exists(recently))


def message_candidates(
    templates: Iterable[MessageTemplate],
    now: datetime,
    customer_ids: Collection[int] | None = None,
    reconsider_after: timedelta = RECONSIDER_AFTER,
) -> dict[int, list[int]]:
    """Customer → the email templates whose trigger and condition hold for them now and that they have not had
    (see _undecided). One query per template; restricted to `customer_ids` when a batch, an audience change or
    a timer names them."""
    candidates: dict[int, list[int]] = {}
    for template in templates:
        queryset = _undecided(template, qualifying_customers(template, now), now, reconsider_after)
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
        due = _undecided(template, qualifying_customers(template, now, window), now).filter(pk__in=list(remaining))
        moment: Any = _due_at(template, now)
        if template.trigger in TIME_TRIGGERS:
            # Its timer says when it really goes (a local time of day, after quiet hours or a throttle window).
            timer = _waiting_timer(template)
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
    return _log(customer_id, template, status, reason, now)


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
            lost = _log(customer_id, template, MessageSend.Status.SUPPRESSED, f"lower priority than {winner.key}", now)
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
        timers_schedule(MESSAGE_TIMER, _retry_rows(retry, templates, now), now=now)
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


# ---------------------------------------------------------------------------------------------------------------
# Time-based templates: a durable timer per customer, fired when the template falls due


def _timer_prefix(template_id: int) -> str:
    return f"message:{template_id}:"


def _timer_key(template_id: int, customer_id: int) -> str:
    return f"{_timer_prefix(template_id)}{customer_id}"


def _waiting_timer(template: MessageTemplate) -> QuerySet[Timer]:
    """The customer's (the outer query's row) timer for the template, when it has not fired yet."""
    key = Concat(Value(_timer_prefix(template.pk)), Cast(OuterRef("pk"), output_field=CharField()))
    return Timer.objects.filter(key=key, fired_at__isnull=True, failed_at__isnull=True)


def _armed(template: MessageTemplate) -> Exists:
    """Whether the customer (the outer query's row) has a timer for the template that has not fired yet."""
    return Exists(_waiting_timer(template))


def _timer_rows(
    template: MessageTemplate, customers: QuerySet[Customer], now: datetime, workspace: EmailSettings, *, again: bool
) -> list[tuple[str, datetime, dict[str, Any]]]:
    """(key, moment, payload) of each customer's timer: the trigger's due moment from the current trial and the
    zone traits, read in one query, moved to the template's local time of day and out of quiet hours
    (allowed_moment: time zones are not SQL that every database shares, so that step is arithmetic on the rows).

    A due moment already past is kept as it is when nothing moves it, so arming again is a no-op
    (timers_schedule) — unless `again` (the sweep re-deciding a pair whose timer fired), which arms it for now."""
    rows = customers.annotate(
        due_at=_due_at(template, now), zone=KT("traits__timezone"), zone_alt=KT("traits__time_zone")
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
        timers_cancel_prefix(_timer_prefix(template.pk))
        return 0
    if ahead is None:
        live = Q(trials__is_current=True, trials__ends_at__gt=now, trials__converted_at__isnull=True)
        customers = Customer.objects.filter(live)
    else:
        customers = qualifying_customers(template, now, ahead).filter(~_armed(template))
    customers = _undecided(template, customers, now)
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


def _retry_rows(
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
        earliest = max(now, last + window) if last is not None else now
        zone = zone_named(*zones.get(send.customer_id, ()), workspace.default_time_zone)
        moment = allowed_moment(earliest, zone, workspace, template.send_at_local_time)
        if moment > now:
            key = _timer_key(template.pk, send.customer_id)
            rows.append((key, moment, {"template": template.pk, "customer": send.customer_id}))
    return rows


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


def _queue_trigger(customer_ids: Collection[int], template_ids: Collection[int]) -> None:
    """Queue the real-time decision once the recording transaction has committed (the worker sees the rows)."""
    from trials.tasks import trigger_messages

    customers, templates = sorted(customer_ids), sorted(template_ids)
    transaction.on_commit(lambda: trigger_messages.delay(customers, templates))


EVENT_TEMPLATES_TTL = 30.0  # seconds a worker process trusts its copy of the hook-relevant templates


@dataclass(frozen=True)
class HookTemplates:
    """The active email templates the stored-batch hook acts on: by event name, and the time-based ones."""

    by_event: dict[str, tuple[int, ...]]
    timed: tuple[int, ...]


_event_templates_cache: dict[str, tuple[float, HookTemplates]] = {}


def _hook_templates() -> HookTemplates:
    """The active "event performed" email templates by event name, and the time-based ones, kept per process for
    EVENT_TEMPLATES_TTL so a batch costs no query to find them. A stale copy only delays the real-time path in
    other worker processes (saving a template forgets this process's copy and arms its timers); the sweep still
    decides every template."""
    cached = _event_templates_cache.get("templates")
    if cached is not None and time.monotonic() - cached[0] < EVENT_TEMPLATES_TTL:
        return cached[1]
    found: dict[str, list[int]] = {}
    timed: list[int] = []
    rows = MessageTemplate.objects.filter(
        active=True, channel=MessageTemplate.Channel.EMAIL, trigger__in=[MessageTemplate.Trigger.EVENT, *TIME_TRIGGERS]
    ).values_list("trigger", "trigger_event", "pk")
    for trigger, name, pk in rows:
        if trigger == MessageTemplate.Trigger.EVENT:
            found.setdefault(name, []).append(pk)
        else:
            timed.append(pk)
    templates = HookTemplates({name: tuple(pks) for name, pks in found.items()}, tuple(timed))
    _event_templates_cache["templates"] = (time.monotonic(), templates)
    return templates


def event_templates_forget() -> None:
    """Drop this process's copy of the hook-relevant templates (after a template changed)."""
    _event_templates_cache.clear()


def messages_on_batch(facts: BatchFacts, now: datetime) -> set[int]:
    """Stored-batch hook: customers who just performed an event an active "event performed" email template
    names get that template decided now (queued after commit); customers whose profile or trial the batch
    changed (a trial started or moved its end, a new time zone — trials.loop's hook runs first and reports its
    changes as profile changes) get the time-based templates' timers armed or moved. Finding the templates
    costs no query (see _hook_templates); it changes no data segments read, so it returns no customers."""
    if not facts.events and not facts.profile_changed:
        return set()
    templates = _hook_templates()
    customer_ids: set[int] = set()
    template_ids: set[int] = set()
    for customer_id, names in facts.events.items():
        for name in names:
            if name in templates.by_event:
                customer_ids.add(customer_id)
                template_ids.update(templates.by_event[name])
    if customer_ids:
        _queue_trigger(customer_ids, template_ids)
    if templates.timed and facts.profile_changed:
        for template in MessageTemplate.objects.filter(pk__in=templates.timed):
            message_timers_arm(template, now=now, customer_ids=facts.profile_changed)
    return set()


def messages_on_audience_enter(segment: Segment, customer_ids: list[int]) -> None:
    """Audience-enter hook: customers who just entered a live audience that an active "audience entered" email
    template names get it decided now (after the entry commits)."""
    template_ids = list(
        MessageTemplate.objects.filter(
            active=True,
            channel=MessageTemplate.Channel.EMAIL,
            trigger=MessageTemplate.Trigger.AUDIENCE,
            trigger_segment=segment,
        ).values_list("pk", flat=True)
    )
    if template_ids and customer_ids:
        _queue_trigger(customer_ids, template_ids)


# ---------------------------------------------------------------------------------------------------------------
# Delivery and unsubscribe


class DeliveryError(Exception):
    """The SMTP server (or backend) did not take the message; the task retries."""


def message_deliver(*, send_id: int, final_attempt: bool = False) -> MessageSend:
    """Deliver one queued send through Django's email backend, with List-Unsubscribe headers.

    Idempotent: anything but a queued send is left alone. Consent and qualification are checked again, so a
    customer who unsubscribed or left the triggering audience since the decision is suppressed instead.
    """
    send = MessageSend.objects.select_related("customer", "template").get(pk=send_id)
    if send.status != MessageSend.Status.QUEUED:
        return send
    now = timezone.now()
    customer, template = send.customer, send.template
    reason = unsendable_reason(customer) or ("" if qualifies(template, customer.pk, now) else "no longer qualifies")
    if reason:
        send.status, send.reason = MessageSend.Status.SUPPRESSED, f"at delivery: {reason}"
        send.save(update_fields=["status", "reason"])
        return send
    try:
        rendered = message_render(template, message_context(customer, now))
    except TemplateSyntaxError as refused:  # stored without validation (admin, SQL): not sendable, not retried
        send.status, send.error = MessageSend.Status.FAILED, render_refusal(refused)
        send.save(update_fields=["status", "error"])
        return send
    link = unsubscribe_url(customer)
    workspace = email_settings()
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=workspace.from_email or settings.DEFAULT_FROM_EMAIL,
        to=[customer.email],
        headers={"List-Unsubscribe": f"<{link}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    )
    if rendered.html.strip():
        message.attach_alternative(rendered.html, "text/html")
    send.attempts += 1
    try:
        message.send(fail_silently=False)
    except Exception as exc:
        send.error = f"{type(exc).__name__}: {exc}"[:2000]
        if final_attempt:
            send.status = MessageSend.Status.FAILED
        send.save(update_fields=["attempts", "error", "status"])
        logger.warning("lifecycle email %s attempt %s failed: %s", send.pk, send.attempts, send.error)
        raise DeliveryError(send.error) from exc
    send.status, send.sent_at, send.subject, send.error = MessageSend.Status.SENT, timezone.now(), rendered.subject, ""
    send.save(update_fields=["status", "sent_at", "subject", "error", "attempts"])
    return send


def customer_unsubscribe(*, customer_id: int) -> Customer:
    """Record that the customer wants no more lifecycle email (consent email=false)."""
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer_id)
        customer.consent = {**(customer.consent or {}), "email": False}
        customer.save(update_fields=["consent"])
    return customer
