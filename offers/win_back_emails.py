"""Trialloop sending the win-back link itself: one email per lapsed trial, with the hosted page's link.

When a trial lapses (canceled, expired, or paused by Stripe for a missing payment method — `lapsed_trials`),
the sweep (`win_back_emails_sweep`, a beat job) starts a win-back session for it and emails the customer the
hosted page's link (with a session token valid as long as the session: the customer's inbox is the proof of
who asks). The decision follows the lifecycle emails' rules by calling their public helpers in
`trials.messaging` (the workspace's sender, quiet hours in the customer's zone, the unsubscribe link) and their
per-customer throttle row (`CustomerMessageLock`, locked while the window is checked), so a win-back email and
a lifecycle email never land inside the same throttle window. Every decision that ends a trial's chance of an
email — sent, refused by the mail server for good, suppressed (no address, unsubscribed, test customer, no
win-back offer applies) — is one `WinBackEmail` row, unique per lapsed subscription; quiet hours, the throttle and
a mail server that is down or answers "try later" only postpone.

The email is sent through Django's email framework (`EmailMultiAlternatives`), in the flow's language (else
the customer's `language` trait, else English), with List-Unsubscribe headers like the lifecycle emails.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.html import escape
from django.utils.translation import gettext

from audiences.models import Customer
from config.throttle import throttle_closed, throttle_give_back, throttle_slot
from integrations.stripe.models import Subscription
from offers.access import win_back_link_grant
from offers.errors import SessionError
from offers.hosted import LANGUAGES, hosted_path
from offers.models import CancellationSession, WinBackEmail
from offers.parameters import offer_summary
from offers.win_back import lapsed_trials, win_back_start
from trials.messaging.models import CustomerMessageLock
from trials.messaging.render import unsubscribe_url
from trials.messaging.rules import customer_zone, email_settings, in_quiet_hours, unsendable_reason

logger = logging.getLogger(__name__)

SWEEP_BATCH = 200
"""At most this many lapsed trials are handled per sweep (each starts a session and sends one email)."""


def _language(session: CancellationSession) -> str:
    trait = str((session.customer.traits or {}).get("language") or "").split("-")[0].lower()
    return session.flow.language or (trait if trait in LANGUAGES else "en")


def win_back_link(session: CancellationSession, language: str, *, now: datetime | None = None) -> str:
    """The absolute hosted-page link of a win-back session, in the email's language: it carries a session token
    that lasts as long as the session (offers.access.win_back_link_grant)."""
    base = str(settings.TRIALLOOP_PUBLIC_URL).rstrip("/")
    grant = win_back_link_grant(session, now=now)
    return f"{base}{hosted_path(grant.token)}?lang={language}"


def _record(subscription: Subscription, status: str, now: datetime, **fields: Any) -> WinBackEmail | None:
    """The trial's one row; None when another worker recorded it first (the unique constraint decides)."""
    try:
        with transaction.atomic():
            return WinBackEmail.objects.create(
                subscription=subscription, customer=subscription.customer, status=status, created_at=now, **fields
            )
    except IntegrityError:
        return None


def _compose(session: CancellationSession, language: str, link: str) -> tuple[str, str, str]:
    """(subject, text, html) of the email, in `language`."""
    with translation.override(language):
        offer = session.offered_offer
        assert offer is not None  # a win-back session starts at its offer
        pitch = offer.headline or offer_summary(offer.kind, offer.parameters)
        brand = session.flow.brand_name
        subject = gettext("Your trial has ended — come back?")
        if brand:
            subject = f"{brand}: {subject}"
        intro = gettext("Your trial ended without a subscription. We would like to have you back:")
        action = gettext("Take the offer")
        valid = gettext("The offer is open for 24 hours from this email.")
        text = f"{intro} {pitch}.\n\n{action}: {link}\n\n{valid}\n"
        html = (
            f"<p>{escape(intro)} <strong>{escape(pitch)}</strong>.</p>"
            f'<p><a href="{escape(link)}" style="background:{escape(session.flow.brand_color)};color:#fff;'
            f'padding:10px 18px;border-radius:8px;text-decoration:none">{escape(action)}</a></p>'
            f"<p>{escape(valid)}</p>"
        )
    return subject, text, html


def win_back_email_send(*, subscription_id: int, now: datetime | None = None) -> WinBackEmail | None:
    """Decide, and send, the win-back email of one lapsed trial → its row, or None when postponed (quiet hours,
    the throttle window) or when the trial is not a lapsed one (any more).

    The session is started (or the open one resumed) first, since the link names it; a trial for which no
    win-back session can start (no offer applies, the customer subscribed again…) is recorded suppressed.
    """
    now = now or timezone.now()
    subscription = lapsed_trials(now).select_related("customer").filter(pk=subscription_id).first()
    if subscription is None or WinBackEmail.objects.filter(subscription=subscription).exists():
        return None
    customer = subscription.customer
    reason = unsendable_reason(customer)
    if reason:
        return _record(subscription, WinBackEmail.Status.SUPPRESSED, now, reason=reason)
    workspace = email_settings()
    local = now.astimezone(customer_zone(customer, workspace.default_time_zone))
    if in_quiet_hours(local, workspace.quiet_start_hour, workspace.quiet_end_hour):
        return None
    window = timedelta(hours=workspace.throttle_hours)
    if throttle_closed(CustomerMessageLock, customer.pk, field="last_sent_at", window=window, now=now):
        return None  # postponed before the session starts: its 24 hours run from the email, not from now
    try:
        session, _ = win_back_start(
            source=None,
            user_id=None if subscription.stripe_subscription_id else customer.user_id,
            stripe_subscription_id=subscription.stripe_subscription_id or None,
            now=now,
        )
    except SessionError as refused:
        return _record(subscription, WinBackEmail.Status.SUPPRESSED, now, reason=refused.message[:300])
    language = _language(session)
    link = win_back_link(session, language, now=now)
    subject, text, html = _compose(session, language, link)
    with throttle_slot(CustomerMessageLock, customer.pk, field="last_sent_at", window=window, now=now) as slot:
        if not slot.open:
            return None  # a lifecycle email won the race since the check above; the open session is resumed next time
        email = _record(
            subscription,
            WinBackEmail.Status.QUEUED,
            now,
            session=session,
            to_email=customer.email,
            subject=subject[:300],
            language=language,
        )
        if email is None:
            return None
        previously_sent_at = slot.take()
    failure = _deliver(email, customer, text, html, workspace.from_email)
    if failure is None or _permanent(failure):
        return email
    # The mail server is unreachable or asked to try later: undo the decision (the row and the throttle slot), so
    # the next sweep tries again with the same open session, instead of giving up on the trial for good.
    logger.warning(
        "win-back email for subscription %s postponed, the mail server failed: %s", subscription.pk, email.error
    )
    with transaction.atomic():
        WinBackEmail.objects.filter(pk=email.pk).delete()
        throttle_give_back(
            CustomerMessageLock, customer.pk, field="last_sent_at", taken_at=now, previous=previously_sent_at
        )
    return None


def _permanent(failure: Exception) -> bool:
    """Whether the mail server refused the message for good (a 5xx answer, every recipient refused)."""
    if isinstance(failure, smtplib.SMTPRecipientsRefused):
        return True
    return isinstance(failure, smtplib.SMTPResponseException) and failure.smtp_code >= 500


def _deliver(email: WinBackEmail, customer: Customer, text: str, html: str, from_email: str) -> Exception | None:
    """Send the email and record the outcome on its row; returns the backend's error, if any."""
    unsubscribe = unsubscribe_url(customer)
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=text,
        from_email=from_email or settings.DEFAULT_FROM_EMAIL,
        to=[email.to_email],
        headers={"List-Unsubscribe": f"<{unsubscribe}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    )
    message.attach_alternative(html, "text/html")
    try:
        message.send(fail_silently=False)
    except Exception as failure:  # any backend error: recorded on the row, not raised into the sweep
        email.status, email.error = WinBackEmail.Status.FAILED, f"{type(failure).__name__}: {failure}"[:2000]
        email.save(update_fields=["status", "error"])
        return failure
    email.status, email.sent_at = WinBackEmail.Status.SENT, timezone.now()
    email.save(update_fields=["status", "error", "sent_at"])
    return None


def win_back_emails_sweep(*, now: datetime | None = None, limit: int = SWEEP_BATCH) -> dict[str, int]:
    """Email the lapsed trials that have no win-back email decision yet, oldest lapse first (one query picks
    them; each then starts a session and sends one email). Returns how many ended in each status, and how many
    were postponed."""
    now = now or timezone.now()
    due = list(
        lapsed_trials(now)
        .filter(win_back_email__isnull=True)
        .order_by("lapsed_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    counts = dict.fromkeys(WinBackEmail.Status.values, 0) | {"postponed": 0}
    for subscription_id in due:
        email = win_back_email_send(subscription_id=subscription_id, now=now)
        counts[email.status if email is not None else "postponed"] += 1
    return counts
