"""The sandbox user-written templates render in: the allowed tags and filters work, anything else is refused at
render time too — not only when a template is saved through the form — so a text written into the database some
other way (admin, SQL, a restored backup) cannot print the context, load a tag library or include a file."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.core import mail
from django.template import TemplateSyntaxError
from django.urls import reverse
from django.utils import timezone

from config.roles import Role
from trials.messaging.decide import message_send
from trials.messaging.delivery import message_deliver
from trials.messaging.in_app import in_app_prompt
from trials.messaging.models import CustomerMessageLock, EmailSettings, MessageSend, MessageTemplate
from trials.messaging.render import message_render
from trials.tests.test_emails_delivery import email_template, trialing
from trials.tests.test_in_app import person, prompt_template

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


@pytest.mark.django_db
def test_deciding_a_refused_template_logs_it_failed_without_taking_the_customer_s_slot(settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    EmailSettings.objects.update_or_create(pk=1, defaults={"quiet_start_hour": 0, "quiet_end_hour": 0})
    customer = trialing(8, first_name="Ada")
    item = email_template("sandbox-decide")
    MessageTemplate.objects.filter(pk=item.pk).update(subject="{% load static %}hi")

    send = message_send(customer_id=customer.pk, template_id=item.pk)

    assert (send.status, send.reason) == (
        MessageSend.Status.FAILED,
        "The template is not allowed: Invalid block tag on line 1: 'load'. Did you forget to register or load this tag?",
    )
    assert CustomerMessageLock.objects.filter(customer=customer, last_sent_at__isnull=False).count() == 0
    assert mail.outbox == []


@pytest.mark.django_db
def test_an_in_app_prompt_the_sandbox_refuses_is_logged_once_and_never_shown() -> None:
    EmailSettings.objects.get_or_create(pk=1)
    MessageTemplate.objects.filter(channel=MessageTemplate.Channel.IN_APP).update(active=False)
    customer = person()
    item = prompt_template()
    MessageTemplate.objects.filter(pk=item.pk).update(html_body="{% debug %}")

    assert in_app_prompt(customer) is None
    assert in_app_prompt(customer) is None
    [logged] = MessageSend.objects.filter(template=item)
    assert logged.status == MessageSend.Status.FAILED and "'debug'" in logged.reason


@pytest.mark.django_db
def test_the_preview_page_says_why_a_refused_template_cannot_render(client: Any, make_user: Any) -> None:
    customer = trialing(9, first_name="Ada")
    item = email_template("sandbox-preview")
    MessageTemplate.objects.filter(pk=item.pk).update(html_body="{{ first_name|safe }}")
    client.force_login(make_user(Role.GROWTH))

    page = client.get(reverse("email-template-preview", args=[item.pk]), {"customer": customer.pk})

    assert page.status_code == 200
    assert "The template is not allowed: Invalid filter: &#x27;safe&#x27;" in page.content.decode()
