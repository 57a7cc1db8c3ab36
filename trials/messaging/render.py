"""Rendering a lifecycle message for one customer: the variables, the sandboxed render and the unsubscribe link.

The variables are plain values read from the profile, the current trial and computed traits; the unsubscribe
link is signed so the page needs no login.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core import signing
from django.template import Context, TemplateSyntaxError
from django.urls import reverse
from django.utils import timezone

from audiences.models import ComputedTraitValue, Customer
from trials.loop.models import ActivationDefinition, Trial
from trials.messaging.models import MessageTemplate
from trials.messaging.sandbox import SANDBOX

UNSUBSCRIBE_SALT = "trials.emails.unsubscribe"


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
