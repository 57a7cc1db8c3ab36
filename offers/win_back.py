"""Win-back sessions: the same object as a cancellation session, for a trial that lapsed unpaid in the last 30
days. It starts at the offer (the win-back offer rules pick it at once, no reason is asked), and accepting it
(offers.outcomes.session_accept) creates a new subscription in Stripe, or resumes a trial Stripe paused.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from audiences.models import Source
from integrations.stripe.currency import conversion
from integrations.stripe.models import Subscription
from integrations.stripe.mrr import monthly_amount, price_interval_amount
from offers.errors import SessionError, SessionNotFound, WrongState
from offers.matching import flow_for_customer, offer_match
from offers.models import CancellationSession, OfferRule, SessionStep
from offers.sessions import sessions_expire_due, step_record

WIN_BACK_WINDOW = timedelta(days=30)
"""A trial that ended unpaid can be won back for this long after it ended (the recovery window)."""

LAPSED_STATUSES = (Subscription.Status.CANCELED, Subscription.Status.INCOMPLETE_EXPIRED)
"""Mirrored statuses of a trial that ended without converting and that Stripe cannot revive: a win-back creates
a new subscription."""

PAUSED_TRIAL = Q(status=Subscription.Status.PAUSED, paid_cents=0, trial_end__isnull=False)
"""A trial Stripe paused when it ended without a payment method (`trial_settings.end_behavior.
missing_payment_method = pause`): it lapsed too, but Stripe can revive it, so a win-back resumes the same
subscription instead of creating one."""


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
    sessions_expire_due(open_sessions, now)
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
            step_record(
                session,
                SessionStep.Kind.START,
                data={"subscription": subscription.pk, "rule": match.rule and match.rule.pk, "offer": match.offer.pk},
            )
    except IntegrityError:
        return open_sessions.get(), False
    return session, True
