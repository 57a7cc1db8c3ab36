"""The sandbox user-written templates render in: the allowed tags and filters work, anything else is refused at
render time too — not only when a template is saved through the form — so a text written into the database some
other way (admin, SQL, a restored backup) cannot print the context, load a tag library or include a file."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.core import mail
from django.template import TemplateSyntaxError
from django.utils import timezone

from trials.emails import message_deliver, message_render
from trials.models import EmailSettings, MessageSend, MessageTemplate
from trials.tests.test_emails_delivery import email_template, trialing

CONTEXT = {
    "first_name": "Ada",
    "trial_days_left": 3,
    "trial_ends_at": datetime(2026, 12, 9, tzinfo=UTC),
    "traits": {"plan": "", "secret_note": "s3cret"},
    "computed": {},
}


def rendered(source: str) -> str:
    return message_render(MessageTemplate(subject="s", html_body=source, text_body=""), CONTEXT).html


def test_the_allowed_tags_and_filters_render() -> None:
    source = (
        "{% if trial_days_left > 1 %}{{ first_name|upper }}{% else %}soon{% endif %}{# note #}"
        "{% comment %}hidden{% endcomment %} {{ traits.plan|default:'free' }} {{ trial_ends_at|date:'Y' }}"
        " day{{ trial_days_left|pluralize }}"
    )
    assert rendered(source) == "ADA free 2026 days"


@pytest.mark.parametrize(
    "source",
    [
        "{% debug %}",
        "{% load static %}{% static 'x.css' %}",
        "{% include 'base.html' %}",
        "{% extends 'base.html' %}",
        "{% for value in traits.values %}{{ value }}{% endfor %}",
        "{% now 'Y' %}",
        "{{ first_name|safe }}",
        "{{ traits|pprint }}",
        "{% templatetag openblock %}",
    ],
)
def test_anything_else_is_refused_when_rendering(source: str) -> None:
    with pytest.raises(TemplateSyntaxError):
        rendered(source)


@pytest.mark.django_db
def test_a_template_stored_without_validation_fails_its_send_with_the_reason(settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    EmailSettings.objects.update_or_create(pk=1, defaults={"quiet_start_hour": 0, "quiet_end_hour": 0})
    customer = trialing(7, first_name="Ada")
    item = email_template("sandbox-check")
    MessageTemplate.objects.filter(pk=item.pk).update(html_body="<p>{% debug %}</p>")
    send = MessageSend.objects.create(
        customer=customer, template=item, status=MessageSend.Status.QUEUED, created_at=timezone.now()
    )

    message_deliver(send_id=send.pk)

    send.refresh_from_db()
    assert send.status == MessageSend.Status.FAILED
    assert send.error.startswith("The template is not allowed: Invalid block tag on line 1: 'debug'")
    assert mail.outbox == []
