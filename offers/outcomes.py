"""The moves that end a cancellation or win-back session through Stripe: accepting the presented offer (saved,
recovered, or deflected by a redirect) and confirming the cancellation. Both go through offers.stripe_requests
(planned once, idempotent, retried safely) under the session's row lock (offers.sessions.session_locked), so a
double click applies once; a Stripe error is recorded as a failed step and raised after the record commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from audiences.models import Customer
from offers.announcements import session_announce
from offers.errors import StripeStepFailed, WrongState
from offers.models import CancellationSession, Offer, SessionStep
from offers.sessions import session_locked, session_require_open, step_record
from offers.stripe_requests import accept_plan, cancel_plan, stripe_step_run, win_back_plan


def _customer_saved(customer_id: int) -> None:
    """The subscriber status segments read: Saved from the moment an offer keeps the customer."""
    Customer.objects.filter(pk=customer_id).update(subscriber_status=Customer.SubscriberStatus.SAVED)


def session_accept(*, session: CancellationSession, now: datetime | None = None) -> CancellationSession:
    """Apply the presented offer through Stripe; the session is saved and the customer's status becomes Saved.

    Accepting a session already saved returns it unchanged. A redirect offer (contact support) sends nothing to
    Stripe: the session is deflected. On a Stripe error the step is recorded as failed and StripeStepFailed is
    raised after the record is committed; calling again retries the step.
    """
    now = now or timezone.now()
    failure: StripeStepFailed | None = None
    with transaction.atomic():
        session = session_locked(session)
        if session.outcome in (CancellationSession.Outcome.SAVED, CancellationSession.Outcome.RECOVERED) or (
            session.outcome == CancellationSession.Outcome.DEFLECTED and session.accepted_offer_id
        ):
            return session
        session_require_open(session)
        offer = session.offered_offer
        if session.stage != CancellationSession.Stage.OFFER or offer is None:
            raise WrongState("No offer is presented in this session.", code="no_offer")
        if offer.kind == Offer.Kind.REDIRECT:
            session.accepted_offer, session.offer_active_until = offer, now
            session.outcome, session.outcome_at = CancellationSession.Outcome.DEFLECTED, now
            session.stage = CancellationSession.Stage.DONE
            session.save()
            step_record(session, SessionStep.Kind.ACCEPT, data={"offer": offer.pk, "redirect": offer.parameters["url"]})
            session_announce(session, now)
            return session
        win_back = session.kind == CancellationSession.Kind.WIN_BACK
        planner = win_back_plan if win_back else accept_plan
        step, failure = stripe_step_run(
            session,
            SessionStep.Kind.ACCEPT,
            lambda client: planner(session, offer, client, now),
            data={"offer": offer.pk},
        )
        if failure is None:
            until = step.data.get("active_until")
            session.accepted_offer = offer
            session.offer_active_until = datetime.fromisoformat(until) if until else None
            session.offer_simulated = session.is_test
            session.stage = CancellationSession.Stage.DONE
            if win_back:
                # The new (or resumed) subscription reaches the mirror through its webhook; billing then sets the
                # status. A resumed trial is recovered as the same subscription.
                created: dict[str, Any] = next((c for c in step.stripe_calls if c["name"] == "create"), {})
                session.recovered_subscription_id = str(
                    (created.get("response") or {}).get("id")
                    or (session.subscription.stripe_subscription_id if not created else "")
                )
                session.outcome, session.outcome_at = CancellationSession.Outcome.RECOVERED, now
            else:
                session.outcome, session.outcome_at = CancellationSession.Outcome.SAVED, now
            session.save()
            if not win_back:
                _customer_saved(session.customer_id)
            session_announce(session, now)
    if failure is not None:
        raise failure
    return session


def session_confirm_cancel(*, session: CancellationSession, now: datetime | None = None) -> CancellationSession:
    """Cancel the subscription in Stripe (at period end, or at once if the flow says so) with the customer's
    reason as Stripe's cancellation feedback and their text as its comment. Confirming while an offer is still
    presented declines it. Confirming a canceled session returns it unchanged."""
    now = now or timezone.now()
    failure: StripeStepFailed | None = None
    with transaction.atomic():
        session = session_locked(session)
        if session.outcome == CancellationSession.Outcome.CANCELED:
            return session
        session_require_open(session)
        if session.kind == CancellationSession.Kind.WIN_BACK:
            raise WrongState("A win-back session has no subscription to cancel.", code="win_back")
        if session.stage == CancellationSession.Stage.REASON:
            raise WrongState("Answer the reason question first.", code="reason_missing")
        if session.stage == CancellationSession.Stage.OFFER:
            step_record(session, SessionStep.Kind.DECLINE, data={"offer": session.offered_offer_id})
        _, failure = stripe_step_run(
            session,
            SessionStep.Kind.CONFIRM_CANCEL,
            lambda client: cancel_plan(session),
            data={"immediately": session.flow.cancel_immediately},
        )
        session.stage = CancellationSession.Stage.CONFIRM
        if failure is None:
            session.outcome, session.outcome_at = CancellationSession.Outcome.CANCELED, now
            session.stage = CancellationSession.Stage.DONE
        session.save()
        if failure is None:
            session_announce(session, now)
    if failure is not None:
        raise failure
    return session
