"""Lifecycle emails end to end: real SMTP delivery to a server on loopback (aiosmtpd), and two workers racing
for one customer on PostgreSQL never both sending inside the throttle window."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from audiences.models import Customer
from trials.loop.models import Trial
from trials.messaging.decide import message_send
from trials.messaging.models import EmailSettings, MessageSend, MessageTemplate
from trials.messaging.templates import message_template_save
from trials.tests.holdouts import without_holdout


class Inbox:
    """An aiosmtpd handler keeping what it received."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (
                envelope.mail_from,
                list(envelope.rcpt_tos),
                email.message_from_bytes(envelope.content, policy=email.policy.default),
            )
        )
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_inbox(settings: Any) -> Iterator[Inbox]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.DEFAULT_FROM_EMAIL = "Trialloop <growth@trialloop.test>"
    try:
        yield inbox
    finally:
        controller.stop()


def trialing(number: int, **traits: Any) -> Customer:
    now = timezone.now()
    customer = Customer.objects.create(
        user_id=f"usr_mail_{number}", email=f"mail{number}@example.test", name="Ada Lovelace", traits=traits
    )
    Trial.objects.create(
        customer=customer, started_at=now - timedelta(days=3), ends_at=now + timedelta(days=11), stage_changed_at=now
    )
    return customer


def email_template(key: str, **fields: Any) -> MessageTemplate:
    return message_template_save(
        MessageTemplate(
            key=key,
            name=key,
            trigger=MessageTemplate.Trigger.TRIAL_DAY,
            trigger_number=1,
            subject="{{ first_name }}, {{ trial_days_left }} days left",
            html_body="<p>Hi {{ first_name }} — {{ traits.company_note }}</p>",
            text_body="Hi {{ first_name }}, you have {{ trial_days_left }} days left.",
            **without_holdout(fields),
        )
    )


@pytest.mark.django_db
def test_delivery_over_smtp_on_loopback(smtp_inbox: Inbox, django_capture_on_commit_callbacks: Any) -> None:
    # Given quiet hours switched off and a customer whose trait holds markup
    EmailSettings.objects.update_or_create(pk=1, defaults={"quiet_start_hour": 0, "quiet_end_hour": 0})
    customer = trialing(1, first_name="Ada", company_note="<script>x</script>")
    item = email_template("smtp-check")
    # When it is sent (the delivery task runs on commit, eagerly in tests)
    with django_capture_on_commit_callbacks(execute=True):
        message_send(customer_id=customer.pk, template_id=item.pk)
    # Then the SMTP server received one message with the headers and both bodies
    [(sender, recipients, message)] = smtp_inbox.messages
    assert sender == "growth@trialloop.test" and recipients == ["mail1@example.test"]
    assert message["Subject"] == "Ada, 10 days left"
    assert message["To"] == "mail1@example.test"
    link = str(message["List-Unsubscribe"]).strip()
    assert link.startswith("<http://127.0.0.1:8000/emails/unsubscribe/") and link.endswith(">")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    parts = {part.get_content_type(): part.get_content().strip() for part in message.walk() if not part.is_multipart()}
    assert parts["text/plain"] == "Hi Ada, you have 10 days left."
    assert parts["text/html"] == "<p>Hi Ada — &lt;script&gt;x&lt;/script&gt;</p>"
    send = MessageSend.objects.get()
    assert (send.status, send.attempts, send.error) == ("sent", 1, "")
    # And the header's link unsubscribes with one POST
    assert Client().post(link[1:-1].removeprefix("http://127.0.0.1:8000")).status_code == 200
    customer.refresh_from_db()
    assert not customer.has_consent("email")


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_send_one_email(settings: Any) -> None:
    """Many rounds of two threads (two database connections) deciding at once for the same customer."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    EmailSettings.objects.update_or_create(pk=1, defaults={"quiet_start_hour": 0, "quiet_end_hour": 0})
    first, second = email_template("race-a"), email_template("race-b")
    customers = [trialing(100 + round_) for round_ in range(10)]
    errors: list[BaseException] = []

    def worker(barrier: threading.Barrier, customer_id: int, template_id: int) -> None:
        try:
            barrier.wait(timeout=10)
            message_send(customer_id=customer_id, template_id=template_id)
        except BaseException as exc:  # reported below; a thread cannot fail the test itself
            errors.append(exc)
        finally:
            connections.close_all()

    for customer in customers:
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=worker, args=(barrier, customer.pk, template_id))
            for template_id in (first.pk, second.pk)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    for customer in customers:
        statuses = sorted(MessageSend.objects.filter(customer=customer).values_list("status", "reason"))
        assert [status for status, _ in statuses] == ["queued", "suppressed"] or [status for status, _ in statuses] == [
            "sent",
            "suppressed",
        ], statuses
        assert statuses[1][1].startswith("throttled")
