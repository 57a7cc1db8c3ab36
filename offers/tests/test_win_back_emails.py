"""Trialloop emailing lapsed trials their win-back link: once per lapsed trial, consent, quiet hours and the
lifecycle throttle respected, in the flow's language — and the link in the email opens the signed offer page."""

from __future__ import annotations

import re
import smtplib
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from audiences.models import Customer
from integrations.stripe.models import Plan, Subscription
from offers.models import CancellationSession, OfferRule, WinBackEmail
from offers.tasks import send_win_back_emails
from offers.win_back_emails import win_back_email_send, win_back_emails_sweep
from trials.messaging.models import CustomerMessageLock, EmailSettings

pytestmark = pytest.mark.django_db


@pytest.fixture
def noon() -> Any:
    """A moment outside the default quiet hours (21:00–08:00 UTC)."""
    return timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)


@pytest.fixture
def lapsed(db: Any, plans: dict[str, Plan], flow: Any, make_offer: Any, make_rule: Any) -> Subscription:
    """Dana's trial ended unpaid three days ago (Stripe canceled it); a win-back rule offers a week more."""
    now = timezone.now()
    customer = Customer.objects.create(user_id="usr_dana", email="dana@example.test", stripe_customer_id="cus_dana")
    make_rule(make_offer("trial_extension", "One more week", days=7), applies_to=OfferRule.AppliesTo.WIN_BACK)
    return Subscription.objects.create(
        customer=customer,
        plan=plans["monthly"],
        stripe_subscription_id="sub_dana_trial",
        status=Subscription.Status.CANCELED,
        started_at=now - timedelta(days=17),
        trial_start=now - timedelta(days=17),
        trial_end=now - timedelta(days=3),
        canceled_at=now - timedelta(days=3),
        ended_at=now - timedelta(days=3),
    )


def link_in(message: Any) -> str:
    match = re.search(r"http://\S+/cancel/\S+", message.body)
    assert match, message.body
    return match.group(0)


def test_a_lapsed_trial_gets_one_email_whose_link_opens_the_offer(lapsed, noon, settings):
    settings.TRIALLOOP_PUBLIC_URL = "http://trialloop.example.test"

    assert win_back_emails_sweep(now=noon) == {"queued": 0, "sent": 1, "suppressed": 0, "failed": 0, "postponed": 0}
    assert win_back_emails_sweep(now=noon + timedelta(days=3))["sent"] == 0  # once per lapsed trial

    (message,) = mail.outbox
    assert message.to == ["dana@example.test"]
    assert message.subject == "Your trial has ended — come back?"
    assert "7 more trial days" in message.body
    assert message.extra_headers["List-Unsubscribe"].startswith("<http")
    assert isinstance(message, EmailMultiAlternatives)
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and "7 more trial days" in str(html)
    link = link_in(message)
    assert link.startswith("http://trialloop.example.test/cancel/") and link.endswith("?lang=en")

    page = Client().get(link.removeprefix("http://trialloop.example.test"))
    assert page.status_code == 200
    assert "Your trial has ended — come back?" in page.content.decode()
    session = CancellationSession.objects.get()
    assert (session.kind, session.subscription_id, session.stage) == ("win_back", lapsed.pk, "offer")
    email = WinBackEmail.objects.get()
    assert (email.status, email.session_id, email.to_email, email.language) == (
        "sent",
        session.pk,
        "dana@example.test",
        "en",
    )
    assert CustomerMessageLock.objects.get(customer=lapsed.customer).last_sent_at == noon

    forged = link.removeprefix("http://trialloop.example.test").replace("/cancel/", "/cancel/x")
    assert Client().get(forged).status_code == 404


def test_the_email_is_in_the_flow_s_language(lapsed, flow, noon):
    flow.language, flow.brand_name = "fr", "Acme"
    flow.save()
    win_back_emails_sweep(now=noon)
    (message,) = mail.outbox
    assert message.subject == "Acme: Votre essai est terminé — vous revenez ?"
    assert link_in(message).endswith("?lang=fr")
    assert "Voir l'offre" in message.body


def test_postponed_in_quiet_hours_and_inside_the_throttle_window(lapsed, noon):
    assert win_back_email_send(subscription_id=lapsed.pk, now=noon.replace(hour=23)) is None
    CustomerMessageLock.objects.create(customer=lapsed.customer, last_sent_at=noon - timedelta(hours=2))
    assert win_back_emails_sweep(now=noon)["postponed"] == 1  # a lifecycle email went out two hours ago
    assert mail.outbox == [] and not WinBackEmail.objects.exists()
    assert win_back_emails_sweep(now=noon + timedelta(days=1))["sent"] == 1  # the window has passed


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"consent": {"email": False}}, "no email consent (unsubscribed)"),
        ({"email": ""}, "no email address"),
        ({"is_test": True}, "test customer"),
    ],
)
def test_suppressed_and_recorded_once(lapsed, noon, change, reason):
    Customer.objects.filter(pk=lapsed.customer_id).update(**change)
    assert win_back_emails_sweep(now=noon)["suppressed"] == 1
    assert win_back_emails_sweep(now=noon)["suppressed"] == 0
    assert mail.outbox == []
    assert WinBackEmail.objects.get().reason == reason
    assert not CancellationSession.objects.exists()


def test_no_email_when_no_win_back_offer_applies(lapsed, noon):
    OfferRule.objects.update(is_active=False)
    win_back_emails_sweep(now=noon)
    assert mail.outbox == []
    assert WinBackEmail.objects.get().reason == "No win-back offer applies to this customer."


def test_a_paused_trial_is_emailed_too(lapsed, noon):
    Subscription.objects.filter(pk=lapsed.pk).update(status=Subscription.Status.PAUSED, canceled_at=None, ended_at=None)
    assert win_back_emails_sweep(now=noon)["sent"] == 1


def test_a_mail_server_that_is_down_postpones_the_email(lapsed, noon, settings):
    settings.EMAIL_BACKEND = "offers.tests.test_win_back_emails.UnreachableBackend"
    assert win_back_emails_sweep(now=noon)["postponed"] == 1
    assert not WinBackEmail.objects.exists()
    assert CustomerMessageLock.objects.get(customer=lapsed.customer).last_sent_at is None  # the slot is given back
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert win_back_emails_sweep(now=noon + timedelta(minutes=15))["sent"] == 1  # the next sweep delivers it
    assert CancellationSession.objects.count() == 1  # with the same session


def test_a_refused_recipient_is_recorded_as_failed(lapsed, noon, settings):
    settings.EMAIL_BACKEND = "offers.tests.test_win_back_emails.RefusingBackend"
    assert win_back_emails_sweep(now=noon)["failed"] == 1
    assert "refused" in WinBackEmail.objects.get().error
    assert win_back_emails_sweep(now=noon + timedelta(days=2))["failed"] == 0  # recorded once, not retried


class UnreachableBackend:
    """An email backend whose server cannot be reached."""

    def __init__(self, **kwargs: Any) -> None:
        pass

    def send_messages(self, messages: Any) -> int:
        raise ConnectionRefusedError("connection refused")


class RefusingBackend:
    """An email backend whose server refuses every recipient for good."""

    def __init__(self, **kwargs: Any) -> None:
        pass

    def send_messages(self, messages: Any) -> int:
        raise smtplib.SMTPRecipientsRefused({"ada@example.test": (550, b"refused: no such user")})


def test_the_periodic_task_runs_the_sweep(lapsed):
    result = send_win_back_emails()
    assert set(result) == {"queued", "sent", "suppressed", "failed", "postponed"}
    assert result["sent"] + result["postponed"] == 1  # postponed when the test runs in quiet hours


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("throttle_hours", [24, 0], ids=["throttle", "no-throttle"])
def test_two_sweeps_racing_send_one_email(lapsed, noon, throttle_hours):
    """Two workers (two connections) deciding at once for the same lapsed trial: the throttle lock — or, with
    no throttle window, the one-row-per-trial constraint — lets one email through."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    EmailSettings.objects.update_or_create(pk=1, defaults={"throttle_hours": throttle_hours})
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            win_back_email_send(subscription_id=lapsed.pk, now=noon)
        except BaseException as exc:  # reported below; a thread cannot fail the test itself
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(mail.outbox) == 1
    assert list(WinBackEmail.objects.values_list("status", flat=True)) == ["sent"]
    assert CancellationSession.objects.count() == 1
