"""Cancellation sessions: a session moves reason → offer → (accept | decline → confirm cancel); each move is a
function here that the session API and the hosted page call. Moves that reach Stripe go through
offers.stripe_requests (planned once, idempotent, retried safely).

The session row is locked (`select_for_update`) for the duration of a move, so two clicks on "accept" apply
the offer once; on SQLite the write lock taken by `BEGIN IMMEDIATE` does the same.

A win-back session (`win_back_start`) is the same object for a trial that lapsed unpaid in the last 30 days: it
starts at the offer, and accepting creates a new subscription in Stripe. Every outcome is told on the customer's
timeline, and acceptances to destinations, inside the move's transaction (offers.announcements).
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from audiences.models import Customer, Source
from integrations.stripe.currency import conversion
from integrations.stripe.models import Subscription
from integrations.stripe.mrr import monthly_amount, price_interval_amount
from offers.announcements import SESSION_COMPLETED_EVENT, session_announce, session_properties, timeline_events_record
from offers.errors import SessionError, SessionNotFound, StripeStepFailed, WrongState
from offers.matching import flow_for_customer, offer_match
from offers.models import (
    CancellationReason,
    CancellationSession,
    Offer,
    OfferRule,
    SessionStep,
)
from offers.selectors import flow_reasons
from offers.stripe_requests import accept_plan, cancel_plan, stripe_step_run, win_back_plan

logger = logging.getLogger(__name__)

SESSION_LIFETIME = timedelta(hours=24)
"""An incomplete session becomes deflected this long after it started (the customer left without canceling)."""

MAX_FEEDBACK = 5000
"""Stripe's limit on `cancellation_details.comment`."""

WIN_BACK_WINDOW = timedelta(days=30)
"""A trial that ended unpaid can be won back for this long after it ended (the recovery window)."""

LAPSED_STATUSES = (Subscription.Status.CANCELED, Subscription.Status.INCOMPLETE_EXPIRED)
"""Mirrored statuses of a trial that ended without converting and that Stripe cannot revive: a win-back creates
a new subscription."""

PAUSED_TRIAL = Q(status=Subscription.Status.PAUSED, paid_cents=0, trial_end__isnull=False)
"""A trial Stripe paused when it ended without a payment method (`trial_settings.end_behavior.
missing_payment_method = pause`): it lapsed too, but Stripe can revive it, so a win-back resumes the same
subscription instead of creating one."""


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


def _step_record(
    session: CancellationSession, kind: str, *, data: dict[str, Any] | None = None, status: str = "succeeded"
) -> SessionStep:
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
    _expire(open_sessions, now)  # what the beat sweep would do, before deciding whether one is still open
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
            _step_record(session, SessionStep.Kind.START, data={"flow": flow.pk, "subscription": subscription.pk})
    except IntegrityError:
        # Another request started one for this subscription at the same moment (one open session per
        # subscription is a unique constraint): resume that one.
        return open_sessions.get(), False
    return session, True


def lapsed_trials(now: datetime) -> QuerySet[Subscription]:
    """Trials that ended unpaid within the recovery window: a subscription that had a trial, never paid an
    invoice, and is canceled or expired — or paused by Stripe at the trial's end for want of a payment method —
    (what `integrations.stripe` mirrors from Stripe), its end — `ended_at`, else `canceled_at`, else `trial_end` — in
    the last 30 days."""
    ended = Coalesce("ended_at", "canceled_at", "trial_end")
    return Subscription.objects.annotate(lapsed_at=ended).filter(
        Q(status__in=LAPSED_STATUSES) | PAUSED_TRIAL,
        trial_end__isnull=False,
        paid_cents=0,
        lapsed_at__gte=now - WIN_BACK_WINDOW,
        lapsed_at__lte=now,
    )


def _lapsed_trial(*, user_id: str | None, stripe_subscription_id: str | None, now: datetime) -> Subscription:
    found = lapsed_trials(now).select_related("customer", "plan")
    if stripe_subscription_id:
        found = found.filter(stripe_subscription_id=stripe_subscription_id)
        if user_id:
            found = found.filter(customer__user_id=user_id)
    elif user_id:
        found = found.filter(customer__user_id=user_id)
    else:
        raise SessionError("Send user_id or subscription_id.", code="missing_subscription")
    subscription = found.order_by("-lapsed_at", "-pk").first()
    if subscription is None:
        raise SessionNotFound("No trial that ended unpaid in the last 30 days.", code="no_lapsed_trial")
    still_open = (
        Subscription.objects.filter(customer=subscription.customer)
        .exclude(status__in=[*LAPSED_STATUSES, Subscription.Status.INCOMPLETE])
        .exclude(PAUSED_TRIAL)
    )
    if still_open.exists():
        raise WrongState("This customer has a subscription again; there is nothing to win back.", code="not_lapsed")
    return subscription


def win_back_start(
    *,
    source: Source | None,
    user_id: str | None = None,
    stripe_subscription_id: str | None = None,
    now: datetime | None = None,
) -> tuple[CancellationSession, bool]:
    """Start (or resume) a win-back session for a trial that lapsed unpaid in the last 30 days → (session,
    created).

    The same object as a cancellation session, on the lapsed subscription: the flow rules pick the flow (its
    brand is the hosted page's), no reason is asked, and the win-back offer rules pick the offer at once, so
    the session starts at the offer. When no win-back rule offers anything, nothing is started (`no_offer`).
    """
    now = now or timezone.now()
    subscription = _lapsed_trial(user_id=user_id, stripe_subscription_id=stripe_subscription_id, now=now)
    customer = subscription.customer
    open_sessions = CancellationSession.objects.filter(
        subscription=subscription, outcome=CancellationSession.Outcome.INCOMPLETE
    )
    _expire(open_sessions, now)
    existing = open_sessions.first()
    if existing is not None:
        return existing, False
    is_test = customer.is_test
    linked = (
        bool(subscription.stripe_subscription_id)
        if subscription.status == Subscription.Status.PAUSED
        else bool(customer.stripe_customer_id and subscription.plan.stripe_price_id)
    )
    if not is_test and not linked:
        raise WrongState("This trial is not linked to Stripe, so an offer cannot be applied.", code="no_stripe")
    flow = flow_for_customer(customer, is_test=is_test, now=now)
    if flow is None:
        raise WrongState("No cancellation flow applies to this customer.", code="no_flow")
    token = secrets.token_urlsafe(24)
    match = offer_match(
        customer=customer,
        reason=None,
        is_test=is_test,
        seed=token,
        now=now,
        applies_to=OfferRule.AppliesTo.WIN_BACK,
    )
    if match.offer is None:
        raise WrongState("No win-back offer applies to this customer.", code="no_offer")
    plan = subscription.plan
    # What the canceled subscription ran at (its own MRR is 0 now), in the workspace currency like every total.
    run_rate = monthly_amount(
        amount_cents=price_interval_amount(plan, subscription.quantity),
        interval=plan.interval,
        interval_count=plan.interval_count,
        quantity=1,
    )
    mrr = conversion().to_cents(
        int(run_rate.quantize(Decimal(1), rounding=ROUND_HALF_UP)), subscription.currency or plan.currency
    )
    try:
        with transaction.atomic():
            session = CancellationSession.objects.create(
                token=token,
                kind=CancellationSession.Kind.WIN_BACK,
                customer=customer,
                subscription=subscription,
                source=source,
                flow=flow,
                is_test=is_test,
                stage=CancellationSession.Stage.OFFER,
                offer_rule=match.rule,
                offered_offer=match.offer,
                mrr_cents=mrr,
            )
            _step_record(
                session,
                SessionStep.Kind.START,
                data={"subscription": subscription.pk, "rule": match.rule and match.rule.pk, "offer": match.offer.pk},
            )
    except IntegrityError:
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


def _locked(session: CancellationSession) -> CancellationSession:
    """The session row, locked for this transaction, with what the moves read."""
    return (
        CancellationSession.objects.select_for_update(of=("self",))
        .select_related("flow", "reason", "offered_offer", "customer", "subscription__plan")
        .get(pk=session.pk)
    )


def _require_open(session: CancellationSession) -> None:
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
        session = _locked(session)
        _require_open(session)
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
        _step_record(
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
        session = _locked(session)
        if (
            session.kind == CancellationSession.Kind.WIN_BACK
            and session.outcome == CancellationSession.Outcome.DEFLECTED
        ):
            return session
        _require_open(session)
        if session.kind == CancellationSession.Kind.WIN_BACK:
            session.outcome, session.outcome_at = CancellationSession.Outcome.DEFLECTED, now
            session.stage = CancellationSession.Stage.DONE
            session.save(update_fields=["outcome", "outcome_at", "stage", "updated_at"])
            _step_record(session, SessionStep.Kind.DECLINE, data={"offer": session.offered_offer_id})
            session_announce(session, now)
            return session
        if session.stage == CancellationSession.Stage.CONFIRM:
            return session
        if session.stage != CancellationSession.Stage.OFFER:
            raise WrongState("There is no offer to decline yet.", code="no_offer")
        session.stage = CancellationSession.Stage.CONFIRM
        session.save(update_fields=["stage", "updated_at"])
        _step_record(session, SessionStep.Kind.DECLINE, data={"offer": session.offered_offer_id})
    return session


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
        session = _locked(session)
        if session.outcome in (CancellationSession.Outcome.SAVED, CancellationSession.Outcome.RECOVERED) or (
            session.outcome == CancellationSession.Outcome.DEFLECTED and session.accepted_offer_id
        ):
            return session
        _require_open(session)
        offer = session.offered_offer
        if session.stage != CancellationSession.Stage.OFFER or offer is None:
            raise WrongState("No offer is presented in this session.", code="no_offer")
        if offer.kind == Offer.Kind.REDIRECT:
            session.accepted_offer, session.offer_active_until = offer, now
            session.outcome, session.outcome_at = CancellationSession.Outcome.DEFLECTED, now
            session.stage = CancellationSession.Stage.DONE
            session.save()
            _step_record(
                session, SessionStep.Kind.ACCEPT, data={"offer": offer.pk, "redirect": offer.parameters["url"]}
            )
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
        session = _locked(session)
        if session.outcome == CancellationSession.Outcome.CANCELED:
            return session
        _require_open(session)
        if session.kind == CancellationSession.Kind.WIN_BACK:
            raise WrongState("A win-back session has no subscription to cancel.", code="win_back")
        if session.stage == CancellationSession.Stage.REASON:
            raise WrongState("Answer the reason question first.", code="reason_missing")
        if session.stage == CancellationSession.Stage.OFFER:
            _step_record(session, SessionStep.Kind.DECLINE, data={"offer": session.offered_offer_id})
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


def _expire(sessions: QuerySet[CancellationSession], now: datetime) -> int:
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
    return _expire(CancellationSession.objects.all(), now or timezone.now())
