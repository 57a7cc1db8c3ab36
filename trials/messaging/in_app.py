"""In-app prompts: the one prompt a customer should see now, what the product reports back, and dismissal rates.

The product asks (GET /api/v1/in-app/{user_id}) and gets at most one prompt. The decision mirrors the email
send decision but without the per-customer window: an in-app prompt interrupts nobody's inbox, it is shown
only while the customer is in the product. What keeps it from nagging:

- one open prompt at a time — a prompt served and neither clicked nor dismissed is served again (same row)
  as long as its template is active and the customer still qualifies, so repeated GETs never duplicate it;
- a template the customer clicked is done for them; one they dismissed stays away for the template's
  throttle window (its own `throttle_hours`, else the workspace window);
- a holdout customer gets a `holdout` row once and never sees the template;
- consent category `in_app` set to false silences every prompt.

Every served prompt is a MessageSend row (status `sent`), so the send log shows in-app prompts next to emails.
Deciding and serving happen under the customer's CustomerMessageLock row, so two concurrent GETs agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Case, Count, Exists, F, FloatField, OuterRef, Q, QuerySet, Value, When
from django.db.models.functions import Cast
from django.template import TemplateSyntaxError
from django.utils import timezone

from audiences.models import Customer, Event
from audiences.services import internal_source
from config.throttle import throttle_slot
from trials.messaging.models import CustomerMessageLock, MessageSend, MessageTemplate
from trials.messaging.render import message_context, message_render, render_refusal
from trials.messaging.rules import email_settings, in_holdout, qualifying_customers

CONSENT_CATEGORY = "in_app"
ACTIONS: dict[str, str] = {"shown": "shown_at", "clicked": "clicked_at", "dismissed": "dismissed_at"}
EVENT_NAMES: dict[str, str] = {
    "shown": "In-App Prompt Shown",
    "clicked": "In-App Prompt Clicked",
    "dismissed": "In-App Prompt Dismissed",
}
#: A template is flagged when more than this share of the prompts shown were dismissed …
DISMISSAL_FLAG_RATE = 0.6
#: … and at least this many were shown (fewer is noise, not a signal).
DISMISSAL_FLAG_MIN_SHOWN = 20


class InAppError(Exception):
    """A request the API answers with a 4xx: `status` and a machine-readable `code`."""

    def __init__(self, message: str, *, code: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


@dataclass(frozen=True)
class Prompt:
    """A served prompt, rendered for the customer it was served to."""

    send: MessageSend
    title: str
    text: str
    html: str


def _in_app_templates() -> QuerySet[MessageTemplate]:
    return MessageTemplate.objects.filter(active=True, channel=MessageTemplate.Channel.IN_APP).order_by(
        "priority", "pk"
    )


def _qualifying_template_ids(customer: Customer, templates: list[MessageTemplate], now: datetime) -> set[int]:
    """Which of the templates' trigger and condition hold for the customer now — one query for all of them."""
    if not templates:
        return set()
    flags = {f"t{t.pk}": Exists(qualifying_customers(t, now).filter(pk=OuterRef("pk")).values("pk")) for t in templates}
    row = Customer.objects.filter(pk=customer.pk).values(**flags).first() or {}
    return {t.pk for t in templates if row.get(f"t{t.pk}")}


def _render(send: MessageSend, now: datetime) -> Prompt | None:
    """The open prompt as shown now; None when its template was changed without validation into one the sandbox
    refuses (the product shows nothing rather than an error)."""
    try:
        rendered = message_render(send.template, message_context(send.customer, now))
    except TemplateSyntaxError:
        return None
    return Prompt(send=send, title=rendered.subject, text=rendered.text, html=rendered.html)


def customer_for_user(user_id: str) -> Customer:
    """The customer the product knows by this user id (InAppError 404 when there is none)."""
    customer = Customer.objects.filter(user_id=user_id).first()
    if customer is None:
        raise InAppError(f"No customer with user id {user_id!r}.", code="unknown_user", status=404)
    return customer


def in_app_prompt(customer: Customer, now: datetime | None = None) -> Prompt | None:
    """The prompt to show this customer now (the open one, else the best new one), or None.

    Why under the lock: two tabs asking at once must get the same prompt, not two rows. Holdout customers are
    logged once per template and shown nothing; a template that lost on priority is simply not served (the
    product shows one prompt at a time), so it is not logged as a suppression on every page view.
    """
    now = now or timezone.now()
    if not customer.has_consent(CONSENT_CATEGORY):
        return None
    templates = list(_in_app_templates())
    qualifying = _qualifying_template_ids(customer, templates, now)
    if not qualifying:  # the usual page view: nothing to show, so no lock row, no transaction, no more queries
        return None
    window = timedelta(hours=email_settings().throttle_hours)
    with throttle_slot(CustomerMessageLock, customer.pk, field="last_sent_at", window=window, now=now):
        rows = MessageSend.objects.filter(customer=customer, template__channel=MessageTemplate.Channel.IN_APP)
        open_send = (
            rows.filter(
                status=MessageSend.Status.SENT,
                clicked_at__isnull=True,
                dismissed_at__isnull=True,
                template_id__in=qualifying,
            )
            .select_related("template", "customer")
            .order_by("template__priority", "-created_at")
            .first()
        )
        if open_send is not None:
            return _render(open_send, now)
        history = list(
            rows.filter(template_id__in=qualifying).values("template_id", "status", "clicked_at", "dismissed_at")
        )
        for template in templates:
            if template.pk not in qualifying or _is_done(template, history, now, window):
                continue
            if in_holdout(template, customer.pk):
                MessageSend.objects.create(
                    customer=customer,
                    template=template,
                    status=MessageSend.Status.HOLDOUT,
                    reason=f"holdout {template.holdout_percent}%",
                    created_at=now,
                )
                continue
            try:
                rendered = message_render(template, message_context(customer, now))
            except TemplateSyntaxError as refused:  # stored without validation: logged once, never shown
                MessageSend.objects.create(
                    customer=customer,
                    template=template,
                    status=MessageSend.Status.FAILED,
                    reason=render_refusal(refused),
                    created_at=now,
                )
                continue
            send = MessageSend.objects.create(
                customer=customer,
                template=template,
                status=MessageSend.Status.SENT,
                subject=rendered.subject,
                created_at=now,
                sent_at=now,
            )
            return Prompt(send=send, title=rendered.subject, text=rendered.text, html=rendered.html)
    return None


def _is_done(template: MessageTemplate, history: Sequence[Mapping[str, Any]], now: datetime, window: timedelta) -> bool:
    """Held out, clicked, or dismissed within the template's window (the workspace window when it has none)."""
    since = now - (timedelta(hours=template.throttle_hours) if template.throttle_hours else window)
    for row in history:
        if row["template_id"] != template.pk:
            continue
        if row["status"] in (MessageSend.Status.HOLDOUT, MessageSend.Status.FAILED) or row["clicked_at"] is not None:
            return True
        if row["dismissed_at"] is not None and row["dismissed_at"] > since:
            return True
    return False


def in_app_record(*, customer: Customer, prompt_id: int, action: str, now: datetime | None = None) -> MessageSend:
    """Record that the product showed, or the customer clicked or dismissed, a served prompt.

    Idempotent: the first time of each action is kept, a repeat changes nothing and records no second timeline
    event. A click or dismissal implies the prompt was shown (so dismissal rates cannot exceed 100%). Each first
    interaction goes on the customer's timeline as an event under Trialloop's internal source, so segments can
    select customers who dismissed or clicked a prompt.
    """
    now = now or timezone.now()
    if action not in ACTIONS:
        raise InAppError(f"action must be one of {', '.join(ACTIONS)}.", code="bad_action")
    with transaction.atomic():
        send = (
            MessageSend.objects.select_for_update()
            .filter(pk=prompt_id, template__channel=MessageTemplate.Channel.IN_APP, status=MessageSend.Status.SENT)
            .first()
        )
        if send is None or send.customer_id != customer.pk:
            raise InAppError(f"No prompt {prompt_id} for this user.", code="unknown_prompt", status=404)
        fields = [ACTIONS[action]] if action == "shown" else ["shown_at", ACTIONS[action]]
        changed = [name for name in fields if getattr(send, name) is None]
        for name in changed:
            setattr(send, name, now)
        if changed:
            send.save(update_fields=changed)
            template = MessageTemplate.objects.only("key", "name").get(pk=send.template_id)
            source = internal_source()
            Event.objects.bulk_create(
                [
                    Event(
                        source=source,
                        message_id=f"in_app:{send.pk}:{name.removesuffix('_at')}",
                        customer_id=customer.pk,
                        type=Event.Type.TRACK,
                        name=EVENT_NAMES[name.removesuffix("_at")],
                        properties={"prompt_id": send.pk, "template_key": template.key, "template_name": template.name},
                        timestamp=now,
                        received_at=now,
                    )
                    for name in changed
                ],
                ignore_conflicts=True,
            )
    return send


def in_app_stats() -> dict[int, dict[str, Any]]:
    """Template id → shown, clicked, dismissed, dismissal rate and whether it is flagged, for every in-app
    template, in one aggregate query (the rate and the flag are computed by the database)."""
    shown = Count("sends", filter=Q(sends__shown_at__isnull=False))
    rows = (
        MessageTemplate.objects.filter(channel=MessageTemplate.Channel.IN_APP)
        .annotate(
            shown=shown,
            clicked=Count("sends", filter=Q(sends__clicked_at__isnull=False)),
            dismissed=Count("sends", filter=Q(sends__dismissed_at__isnull=False)),
        )
        .annotate(
            dismissal_rate=Case(
                When(shown__gt=0, then=Cast(F("dismissed"), FloatField()) / Cast(F("shown"), FloatField())),
                default=Value(None, output_field=FloatField()),
                output_field=FloatField(),
            )
        )
        .annotate(
            flagged=Case(
                When(
                    shown__gte=DISMISSAL_FLAG_MIN_SHOWN,
                    dismissal_rate__gt=DISMISSAL_FLAG_RATE,
                    then=Value(True),
                ),
                default=Value(False),
            )
        )
        .values("pk", "shown", "clicked", "dismissed", "dismissal_rate", "flagged")
    )
    return {row.pop("pk"): row for row in rows}
