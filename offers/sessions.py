"""Cancellation sessions: a session moves reason → offer → (accept | decline → confirm cancel). Starting one, reading
it, answering the reason and declining the offer are here, with what every move shares (the row lock, the step
record, the expiry of sessions left open); the moves that end a session with Stripe (accept, confirm cancel) are
in offers.outcomes, and win-back sessions start in offers.win_back. The session API and the hosted page call them.

The session row is locked (`select_for_update`) for the duration of a move, so two clicks on "accept" apply
the offer once; on SQLite the write lock taken by `BEGIN IMMEDIATE` does the same. Every outcome is told on the
customer's timeline, and acceptances to destinations, inside the move's transaction (offers.announcements).
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, QuerySet
from django.utils import timezone

from audiences.models import Customer, Source
from integrations.stripe.models import Subscription
from offers.announcements import SESSION_COMPLETED_EVENT, session_announce, session_properties, timeline_events_record
from offers.errors import SessionError, SessionNotFound, WrongState
from offers.matching import flow_for_customer, offer_match
from offers.models import CancellationReason, CancellationSession, SessionStep
from offers.selectors import flow_reasons

logger = logging.getLogger(__name__)

SESSION_LIFETIME = timedelta(hours=24)
"""An incomplete session becomes deflected this long after it started (the customer left without canceling)."""

MAX_FEEDBACK = 5000
"""Stripe's limit on `cancellation_details.comment`."""


def _open_subscription(*, user_id: str | None, stripe_subscription_id: str | None) -> Subscription:
    if stripe_subscription_id:
        found = Subscription.objects.select_related("customer", "plan").filter(
            stripe_subscription_id=stripe_subscription_id
        )
        subscription = found.first()
        if subscription is None:
            raise SessionNotFound(f"No subscription {stripe_subscription_id}.")
        if user_id and subscription.customer.user_id != user_id:
            raise SessionNotFound(f"Subscription {stripe_subscription_id} does not belong to user {user_id}.")
        return subscription
    if not user_id:
        raise SessionError("Send user_id or subscription_id.", code="missing_subscription")
    customer = Customer.objects.filter(user_id=user_id).first()
    if customer is None:
        raise SessionNotFound(f"No customer with user id {user_id}.")
    open_statuses = [
        Subscription.Status.TRIALING,
        Subscription.Status.ACTIVE,
        Subscription.Status.PAST_DUE,
        Subscription.Status.UNPAID,
        Subscription.Status.PAUSED,
    ]
    subscription = (
        Subscription.objects.select_related("customer", "plan")
        .filter(customer=customer, status__in=open_statuses)
        .order_by("-started_at", "-pk")
        .first()
    )
    if subscription is None:
        raise SessionNotFound(f"User {user_id} has no subscription that could be canceled.")
    return subscription


def step_record(
    session: CancellationSession, kind: str, *, data: dict[str, Any] | None = None, status: str = "succeeded"
) -> SessionStep:
    """Record a move of the session (one row per kind: a move made again updates its row)."""
    step, _ = SessionStep.objects.update_or_create(
        session=session, kind=kind, defaults={"data": data or {}, "status": status}
    )
    return step


def session_start(
    *,
    source: Source | None,
    user_id: str | None = None,
    stripe_subscription_id: str | None = None,
    now: datetime | None = None,
) -> tuple[CancellationSession, bool]:
    """Start (or resume) a cancellation session for a subscription → (session, created).

    The subscription is named by its Stripe id, or found as the user's newest open subscription. A session
    still open for the same subscription (incomplete, under 24 h old) is resumed, so a product that retries or a
    customer who reloads does not start over. The flow is picked by the flow rules; a test customer's session is
    a test session (drafts apply, nothing is sent to Stripe).
    """
    now = now or timezone.now()
    subscription = _open_subscription(user_id=user_id, stripe_subscription_id=stripe_subscription_id)
    if subscription.status in (Subscription.Status.CANCELED, Subscription.Status.INCOMPLETE_EXPIRED):
        raise WrongState("This subscription is already canceled.", code="subscription_canceled")
    customer = subscription.customer
    open_sessions = CancellationSession.objects.filter(
        subscription=subscription, outcome=CancellationSession.Outcome.INCOMPLETE
    )
    sessions_expire_due(open_sessions, now)  # what the beat sweep would do, before deciding whether one is still open
    existing = open_sessions.first()
    if existing is not None:
        return existing, False
    is_test = customer.is_test
    if not is_test and not subscription.stripe_subscription_id:
        raise WrongState("This subscription is not linked to Stripe, so offers cannot be applied.", code="no_stripe")
    flow = flow_for_customer(customer, is_test=is_test, now=now)
    if flow is None:
        raise WrongState("No cancellation flow applies to this customer.", code="no_flow")
    try:
        with transaction.atomic():
            session = CancellationSession.objects.create(
                token=secrets.token_urlsafe(24),
                customer=customer,
                subscription=subscription,
                source=source,
                flow=flow,
                is_test=is_test,
                mrr_cents=subscription.mrr_cents,
            )
            step_record(session, SessionStep.Kind.START, data={"flow": flow.pk, "subscription": subscription.pk})
    except IntegrityError:
        # Another request started one for this subscription at the same moment (one open session per
        # subscription is a unique constraint): resume that one.
        return open_sessions.get(), False
    return session, True


def session_get(token: str) -> CancellationSession:
    """The session with this public token (SessionNotFound otherwise)."""
    session = (
        CancellationSession.objects.select_related(
            "flow", "reason", "offered_offer", "accepted_offer", "subscription__plan", "customer"
        )
        .filter(token=token)
        .first()
    )
    if session is None:
        raise SessionNotFound("No such cancellation session.")
    return session


def session_locked(session: CancellationSession) -> CancellationSession:
    """The session row, locked for this transaction, with what the moves read."""
    return (
        CancellationSession.objects.select_for_update(of=("self",))
        .select_related("flow", "reason", "offered_offer", "customer", "subscription__plan")
        .get(pk=session.pk)
    )


def session_require_open(session: CancellationSession) -> None:
    """Refuse a move on a session that has already ended (its outcome is set)."""
    if session.outcome != CancellationSession.Outcome.INCOMPLETE:
        raise WrongState(f"This session is already {session.outcome}.", code=f"session_{session.outcome}")


def session_answer_reason(
    *, session: CancellationSession, reason_id: int | None, feedback: str = "", now: datetime | None = None
) -> CancellationSession:
    """Record why the customer is canceling (and their feedback), then pick the offer to present.

    Answering again with the same reason returns the session as it is; a different answer after the offer was
    chosen is refused (the offer shown must not change under the customer).
    """
    now = now or timezone.now()
    feedback = (feedback or "").strip()
    if len(feedback) > MAX_FEEDBACK:
        raise SessionError(f"feedback: at most {MAX_FEEDBACK} characters.", code="feedback_too_long")
    with transaction.atomic():
        session = session_locked(session)
        session_require_open(session)
        if session.kind == CancellationSession.Kind.WIN_BACK:
            raise WrongState("A win-back session asks no reason.", code="win_back")
        if session.stage != CancellationSession.Stage.REASON:
            if session.reason_id == reason_id:
                return session
            raise WrongState("The reason was already given for this session.", code="reason_already_given")
        reasons = {reason.pk: reason for reason in flow_reasons(session.flow)}
        reason: CancellationReason | None = None
        if reasons:
            if reason_id is None:
                raise SessionError("reason_id: choose one of the flow's reasons.", code="missing_reason")
            if reason_id not in reasons:
                raise SessionError(f"reason_id: {reason_id} is not a reason of this flow.", code="unknown_reason")
            reason = reasons[reason_id]
        match = offer_match(
            customer=session.customer,
            reason=reason,
            is_test=session.is_test,
            seed=session.token,
            now=now,
            exclude_session=session.pk,
        )
        session.reason = reason
        session.feedback = feedback if session.flow.asks_feedback_for(reason.pk if reason else None) else ""
        session.offer_rule = match.rule
        session.offered_offer = match.offer
        session.stage = CancellationSession.Stage.OFFER if match.offer else CancellationSession.Stage.CONFIRM
        session.save(update_fields=["reason", "feedback", "offer_rule", "offered_offer", "stage", "updated_at"])
        step_record(
            session,
            SessionStep.Kind.REASON,
            data={
                "reason": reason.pk if reason else None,
                "rule": match.rule.pk if match.rule else None,
                "offer": match.offer.pk if match.offer else None,
                "repeat_blocked": match.repeat_blocked,
            },
        )
    return session


def session_decline(*, session: CancellationSession, now: datetime | None = None) -> CancellationSession:
    """The customer said no to the offer: on to the cancel confirmation (declining twice changes nothing).

    In a win-back session there is nothing to cancel: declining ends it deflected (not recovered)."""
    now = now or timezone.now()
    with transaction.atomic():
        session = session_locked(session)
        if (
            session.kind == CancellationSession.Kind.WIN_BACK
            and session.outcome == CancellationSession.Outcome.DEFLECTED
        ):
            return session
        session_require_open(session)
        if session.kind == CancellationSession.Kind.WIN_BACK:
            session.outcome, session.outcome_at = CancellationSession.Outcome.DEFLECTED, now
            session.stage = CancellationSession.Stage.DONE
            session.save(update_fields=["outcome", "outcome_at", "stage", "updated_at"])
            step_record(session, SessionStep.Kind.DECLINE, data={"offer": session.offered_offer_id})
            session_announce(session, now)
            return session
        if session.stage == CancellationSession.Stage.CONFIRM:
            return session
        if session.stage != CancellationSession.Stage.OFFER:
            raise WrongState("There is no offer to decline yet.", code="no_offer")
        session.stage = CancellationSession.Stage.CONFIRM
        session.save(update_fields=["stage", "updated_at"])
        step_record(session, SessionStep.Kind.DECLINE, data={"offer": session.offered_offer_id})
    return session


def sessions_expire_due(sessions: QuerySet[CancellationSession], now: datetime) -> int:
    """Deflect the incomplete sessions past their lifetime and put "Cancellation Session Completed" on their
    customers' timelines: one locking SELECT of the rows, one UPDATE, one INSERT, whatever their number."""
    with transaction.atomic():
        due = list(
            sessions.filter(outcome=CancellationSession.Outcome.INCOMPLETE, created_at__lte=now - SESSION_LIFETIME)
            .select_for_update(of=("self",), skip_locked=True)
            .select_related("reason", "offered_offer")
        )
        if not due:
            return 0
        updated = CancellationSession.objects.filter(
            pk__in=[session.pk for session in due], outcome=CancellationSession.Outcome.INCOMPLETE
        ).update(
            outcome=CancellationSession.Outcome.DEFLECTED,
            outcome_at=ExpressionWrapper(F("created_at") + SESSION_LIFETIME, output_field=DateTimeField()),
            stage=CancellationSession.Stage.DONE,
            updated_at=now,
        )
        rows = []
        for session in due:
            session.outcome, session.outcome_at = (
                CancellationSession.Outcome.DEFLECTED,
                session.created_at + SESSION_LIFETIME,
            )
            rows.append((session, "completed", SESSION_COMPLETED_EVENT, session_properties(session)))
        timeline_events_record(rows, now)
    return updated


def sessions_expire(*, now: datetime | None = None) -> int:
    """Incomplete sessions older than 24 hours become deflected (the customer left without canceling), dated
    when their 24 hours ran out. One set-based UPDATE; running it twice changes nothing."""
    return sessions_expire_due(CancellationSession.objects.all(), now or timezone.now())
