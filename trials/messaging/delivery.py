"""Delivery of a queued lifecycle email through Django's email backend, and the one-click unsubscribe.

Delivery checks consent and qualification again, so a customer who unsubscribed or left the audience since the
decision is suppressed instead; SMTP failures raise DeliveryError so the task retries with backoff.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template import TemplateSyntaxError
from django.utils import timezone

from audiences.models import Customer
from config.retry import RetryPolicy
from trials.messaging.models import MessageSend
from trials.messaging.render import message_context, message_render, render_refusal, unsubscribe_url
from trials.messaging.rules import email_settings, qualifies, unsendable_reason

logger = logging.getLogger(__name__)


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


# Six tries: 1, 2, 4, 8 and 16 minutes apart (config.retry; Celery's autoretry re-queues the task).
EMAIL_DELIVERY_RETRY = RetryPolicy(first=60, growth=2, cap=3600, attempts=6)


@shared_task(name="trials.tasks.deliver_message", bind=True, **EMAIL_DELIVERY_RETRY.task_options(DeliveryError))
def deliver_message(self: Any, send_id: int) -> str:
    """Deliver one queued lifecycle email; retried with backoff, marked failed after the last attempt."""
    final = self.request.retries >= self.max_retries
    return message_deliver(send_id=send_id, final_attempt=final).status
