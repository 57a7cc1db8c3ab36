"""Writes of the offers app: saving offers, matching rules, and running a cancellation session through Stripe.

A session moves reason → offer → (accept | decline → confirm cancel); each move is a function here that the
session API and the hosted page call. Every move that reaches Stripe is planned once and recorded as a
`SessionStep` (requests, parameters and idempotency keys), so:

- retrying a failed step re-sends the very same requests under the same keys — Stripe applies each at most
  once even when the first answer was lost;
- after an error Stripe stores under the key (a card or validation error, any 4xx but 409/429), the retry
  uses the next generation of keys, as replaying the key would only replay the error;
- a test session (a test customer's) plans the same requests but sends none: the step is `simulated`.

The session row is locked (`select_for_update`) for the duration of a move, so two clicks on "accept" apply
the offer once; on SQLite the write lock taken by `BEGIN IMMEDIATE` does the same.

A win-back session (`win_back_start`) is the same object for a trial that lapsed unpaid in the last 30 days: it
starts at the offer, and accepting creates a new subscription in Stripe. Every outcome is told on the customer's
timeline, and acceptances to destinations, inside the move's transaction (`_session_announce`).
"""

from __future__ import annotations

import calendar
import hashlib
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, cast

import stripe
from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q, QuerySet
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from audiences.live import internal_source
from audiences.models import Customer, Event, Source
from integrations.destinations import Outbound, OutboundKind, outbound_emit
from integrations.stripe_api import StripeNotConfigured, stripe_client
from offers.models import (
    CancellationFlow,
    CancellationReason,
    CancellationSession,
    FlowRule,
    Offer,
    OfferRule,
    OfferRuleOffer,
    OfferTag,
    SessionStep,
)
from offers.parameters import offer_parameters_clean
from offers.selectors import flow_reasons
from segments.compiler import compile_tree
from segments.conditions import InvalidCondition, parse_tree
from segments.models import Segment
from segments.selectors import segment_draft_members
from segments.usage import SegmentUse
from trials.models import BillingInterval, Plan, Subscription
from trials.services import conversion, monthly_amount, price_interval_amount

logger = logging.getLogger(__name__)

SESSION_LIFETIME = timedelta(hours=24)
"""An incomplete session becomes deflected this long after it started (the customer left without canceling)."""

MAX_FEEDBACK = 5000
"""Stripe's limit on `cancellation_details.comment`."""

WIN_BACK_WINDOW = timedelta(days=30)
"""A trial that ended unpaid can be won back for this long after it ended (the recovery window)."""

WIN_BACK_KINDS = (Offer.Kind.DISCOUNT, Offer.Kind.TRIAL_EXTENSION, Offer.Kind.REDIRECT)
"""What a win-back session can offer: a new subscription with a discount or a new trial, or a way to support.
Pausing or changing the plan of a subscription that no longer runs means nothing."""

LAPSED_STATUSES = (Subscription.Status.CANCELED, Subscription.Status.INCOMPLETE_EXPIRED)
"""Mirrored statuses of a trial that ended without converting and that Stripe cannot revive: a win-back creates
a new subscription."""

PAUSED_TRIAL = Q(status=Subscription.Status.PAUSED, paid_cents=0, trial_end__isnull=False)
"""A trial Stripe paused when it ended without a payment method (`trial_settings.end_behavior.
missing_payment_method = pause`): it lapsed too, but Stripe can revive it, so a win-back resumes the same
subscription instead of creating one."""


# --- Errors the session API turns into answers ---------------------------------------------------------------


class SessionError(Exception):
    """A move that cannot be made; `status` and `code` are what the API answers."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class SessionNotFound(SessionError):
    status, code = 404, "not_found"


class WrongState(SessionError):
    """The move does not fit where the session is (e.g. accepting when no offer was presented)."""

    status, code = 409, "wrong_state"


class StripeUnavailable(SessionError):
    """No Stripe API key is configured, so a live session cannot apply anything."""

    status, code = 503, "stripe_not_configured"


class StripeStepFailed(SessionError):
    """Stripe refused or failed a request; the step is recorded as failed and may be retried."""

    status, code = 502, "stripe_error"

    def __init__(self, message: str, *, stripe_status: int | None, stripe_code: str | None, retry_same_key: bool):
        super().__init__(message)
        self.stripe_status, self.stripe_code, self.retry_same_key = stripe_status, stripe_code, retry_same_key


# --- Offers, reasons, flows and rules ------------------------------------------------------------------------


@transaction.atomic
def offer_save(
    *,
    offer: Offer | None = None,
    name: str,
    kind: str,
    parameters: Any,
    headline: str = "",
    body: str = "",
    tags: Iterable[str] = (),
    is_active: bool = True,
) -> Offer:
    """Create or update an offer; parameters are checked for the kind (InvalidOfferParameters when wrong)."""
    cleaned = offer_parameters_clean(kind, parameters)
    offer = offer or Offer()
    offer.name, offer.kind, offer.parameters = name, kind, cleaned
    offer.headline, offer.body, offer.is_active = headline, body, is_active
    offer.full_clean(exclude=["parameters"])
    offer.save()
    tag_objects = [OfferTag.objects.get_or_create(name=tag.strip())[0] for tag in tags if tag.strip()]
    offer.tags.set(tag_objects)
    return offer


@transaction.atomic
def offer_rule_save(
    *,
    rule: OfferRule | None = None,
    name: str = "",
    position: int | None = None,
    segments: Sequence[Segment] = (),
    reasons: Sequence[CancellationReason] = (),
    offers: Sequence[tuple[Offer, int]] = (),
    no_offer: bool = False,
    allow_repeat: bool = False,
    repeat_window_days: int = 90,
    is_active: bool = True,
    is_draft: bool = True,
    applies_to: str = OfferRule.AppliesTo.CANCELLATION,
) -> OfferRule:
    """Create or update an offer rule with its segments, reasons and weighted offers (at the end when new).

    A rule either shows no offer or names at least one; weights must be positive. A win-back rule
    (`applies_to=win_back`) is tried in win-back sessions only, where no reason is asked.
    """
    if no_offer and offers:
        raise ValueError("A 'no offer' rule cannot also name offers.")
    if not no_offer and not offers:
        raise ValueError("Name at least one offer, or choose 'no offer'.")
    if any(weight < 1 for _, weight in offers):
        raise ValueError("Weights must be at least 1.")
    if repeat_window_days < 1:
        raise ValueError("The repeat window is at least one day.")
    rule = rule or OfferRule()
    if position is None and rule.pk is None:
        last = OfferRule.objects.order_by("-position").values_list("position", flat=True).first()
        position = (last or 0) + 1
    if position is not None:
        rule.position = position
    rule.name, rule.no_offer, rule.allow_repeat = name, no_offer, allow_repeat
    rule.repeat_window_days, rule.is_active, rule.is_draft = repeat_window_days, is_active, is_draft
    if applies_to not in OfferRule.AppliesTo.values:
        raise ValueError(f"Unknown applies_to {applies_to!r}.")
    rule.applies_to = applies_to
    rule.save()
    rule.segments.set(segments)
    rule.reasons.set(reasons)
    OfferRuleOffer.objects.filter(rule=rule).delete()
    OfferRuleOffer.objects.bulk_create(OfferRuleOffer(rule=rule, offer=offer, weight=w) for offer, w in offers)
    return rule


@transaction.atomic
def flow_rule_save(
    *,
    rule: FlowRule | None = None,
    flow: CancellationFlow,
    name: str = "",
    position: int | None = None,
    segments: Sequence[Segment] = (),
    is_active: bool = True,
    is_draft: bool = True,
) -> FlowRule:
    """Create or update a flow rule (at the end of the list when new)."""
    rule = rule or FlowRule()
    if position is None and rule.pk is None:
        last = FlowRule.objects.order_by("-position").values_list("position", flat=True).first()
        position = (last or 0) + 1
    if position is not None:
        rule.position = position
    rule.flow, rule.name, rule.is_active, rule.is_draft = flow, name, is_active, is_draft
    rule.save()
    rule.segments.set(segments)
    return rule


@transaction.atomic
def offer_rule_save_cleaned(*, rule: OfferRule | None, data: dict[str, Any]) -> OfferRule:
    """offer_rule_save from a validated OfferRuleForm's cleaned data: the page and the staff API save alike."""
    return offer_rule_save(
        rule=rule,
        name=data["name"],
        segments=list(data["segments"]),
        reasons=list(data["reasons"]),
        offers=data["offers"],
        no_offer=data["no_offer"],
        allow_repeat=data["allow_repeat"],
        repeat_window_days=data["repeat_window_days"],
        is_active=data["is_active"],
        is_draft=data["is_draft"],
        applies_to=data["applies_to"] or OfferRule.AppliesTo.CANCELLATION,
    )


def flow_rule_save_cleaned(*, rule: FlowRule | None, data: dict[str, Any]) -> FlowRule:
    """flow_rule_save from a validated FlowRuleForm's cleaned data: the page and the staff API save alike."""
    return flow_rule_save(
        rule=rule,
        flow=data["flow"],
        name=data["name"],
        segments=list(data["segments"]),
        is_active=data["is_active"],
        is_draft=data["is_draft"],
    )


def rules_reorder(*, model: type[OfferRule] | type[FlowRule], ordered_ids: Sequence[int]) -> None:
    """Give rules the positions 1, 2, 3… in the order given (the first match wins, so order is the policy).

    Each moved rule is saved on its own, not updated in bulk, so the audit log records every change of order."""
    rules = model.objects.in_bulk(ordered_ids)
    for position, rule_id in enumerate(ordered_ids, start=1):
        rule = rules[rule_id]
        if rule.position != position:
            rule.position = position
            rule.save(update_fields=["position", "updated_at"])


def draft_publish(item: CancellationFlow | OfferRule | FlowRule) -> None:
    """Make a draft flow or rule live (used for live customers from now on), from any door: the staff page's form,
    the staff API's publish action. Saved, never updated in bulk, so the audit log records who published it."""
    if item.is_draft:
        item.is_draft = False
        item.save(update_fields=["is_draft", "updated_at"])


# --- Matching ------------------------------------------------------------------------------------------------


def customer_in_any_segment(
    customer: Customer, segments: Sequence[Segment], *, is_test: bool, now: datetime | None = None
) -> bool:
    """Whether the customer is in any of the segments right now (no segment = everyone).

    Evaluated through the segments compiler, restricted to this customer, rather than read from the
    materialised membership: a cancellation happens once, and a membership up to five minutes old could show a
    customer the offer of a segment they just left. In a test session a segment's saved draft (with the test
    customers forced into it) is used instead of its live conditions, so flows can be tried before publishing.
    A segment whose conditions became invalid matches nobody.
    """
    if not segments:
        return True
    now = now or timezone.now()
    for segment in segments:
        try:
            if is_test and segment.draft_conditions is not None:
                forced = segment.draft_test_customers.values_list("pk", flat=True)
                matching = segment_draft_members(segment, segment.draft_conditions, forced=forced, now=now)
            else:
                matching = Customer.objects.filter(
                    compile_tree(parse_tree(segment.conditions, segment_id=segment.pk), now)
                )
        except InvalidCondition:
            logger.warning("segment %s has invalid conditions; it matches nobody in offer rules", segment.pk)
            continue
        if matching.filter(pk=customer.pk).exists():
            return True
    return False


def _visible(is_test: bool) -> Q:
    """Active rules; live ones only, unless this is a test session (which also sees drafts)."""
    return Q(is_active=True) if is_test else Q(is_active=True, is_draft=False)


def flow_for_customer(customer: Customer, *, is_test: bool, now: datetime | None = None) -> CancellationFlow | None:
    """The flow of the first flow rule the customer matches, in position order (None when none matches)."""
    flow_ok = Q(flow__is_active=True) if is_test else Q(flow__is_active=True, flow__is_draft=False)
    rules = FlowRule.objects.filter(_visible(is_test) & flow_ok).select_related("flow").prefetch_related("segments")
    for rule in rules.order_by("position", "pk"):
        if customer_in_any_segment(customer, list(rule.segments.all()), is_test=is_test, now=now):
            return rule.flow
    return None


def weighted_pick(entries: Sequence[OfferRuleOffer], seed: str) -> Offer:
    """One of the entries, with probability weight ÷ total weight, the same every time for the same seed.

    Seeded by the session token (and rule), so asking again — a retry, a page reload — shows the same offer.
    """
    total = sum(entry.weight for entry in entries)
    point = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") % total
    for entry in entries:
        if point < entry.weight:
            return entry.offer
        point -= entry.weight
    raise AssertionError("unreachable: point < total")


@dataclass(frozen=True)
class OfferMatch:
    """The outcome of offer matching: the rule that matched (if any) and the offer to show (if any)."""

    rule: OfferRule | None
    offer: Offer | None
    repeat_blocked: bool = False


def recently_saved(customer_id: int, *, days: int, now: datetime, exclude_session: int | None = None) -> bool:
    """Whether the customer accepted an offer (and was saved) within the last `days`."""
    sessions = CancellationSession.objects.filter(
        customer_id=customer_id,
        outcome=CancellationSession.Outcome.SAVED,
        accepted_offer__isnull=False,
        outcome_at__gte=now - timedelta(days=days),
    )
    if exclude_session is not None:
        sessions = sessions.exclude(pk=exclude_session)
    return sessions.exists()


def offer_match(
    *,
    customer: Customer,
    reason: CancellationReason | None,
    is_test: bool,
    seed: str,
    now: datetime | None = None,
    exclude_session: int | None = None,
    applies_to: str = OfferRule.AppliesTo.CANCELLATION,
) -> OfferMatch:
    """Walk the offer rules for this kind of session in order; the first whose segments and reasons both match
    decides.

    Empty segments or reasons match anything. A matching rule shows no offer when it says so, when its offers
    are all inactive, or — unless it allows repeats — when the customer was saved by an offer within its repeat
    window (first match still wins: a later rule is not consulted). Win-back rules (`applies_to=win_back`) are
    matched without a reason — the trial ended, nobody was asked — and offer only what Stripe can apply to a
    lapsed trial (WIN_BACK_KINDS); their other offers are skipped as if inactive.
    """
    now = now or timezone.now()
    win_back = applies_to == OfferRule.AppliesTo.WIN_BACK
    rules = (
        OfferRule.objects.filter(_visible(is_test), applies_to=applies_to)
        .prefetch_related("segments", "reasons")
        .order_by("position", "pk")
    )
    for rule in rules:
        reason_ids = {r.pk for r in rule.reasons.all()}
        if not win_back and reason_ids and (reason is None or reason.pk not in reason_ids):
            continue
        if not customer_in_any_segment(customer, list(rule.segments.all()), is_test=is_test, now=now):
            continue
        if rule.no_offer:
            return OfferMatch(rule, None)
        if not rule.allow_repeat and recently_saved(
            customer.pk, days=rule.repeat_window_days, now=now, exclude_session=exclude_session
        ):
            return OfferMatch(rule, None, repeat_blocked=True)
        candidates = OfferRuleOffer.objects.filter(rule=rule, offer__is_active=True)
        if win_back:
            candidates = candidates.filter(offer__kind__in=WIN_BACK_KINDS)
        entries = list(candidates.select_related("offer").order_by("pk"))
        if not entries:
            return OfferMatch(rule, None)
        return OfferMatch(rule, weighted_pick(entries, f"{seed}:{rule.pk}"))
    return OfferMatch(None, None)


# --- Dates ---------------------------------------------------------------------------------------------------


def add_months(moment: datetime, months: int) -> datetime:
    """The same day `months` later (the month's last day when it is shorter)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def add_interval(moment: datetime, interval: str, count: int) -> datetime:
    """`moment` plus `count` billing intervals."""
    if interval == BillingInterval.YEAR:
        return add_months(moment, 12 * count)
    if interval == BillingInterval.MONTH:
        return add_months(moment, count)
    if interval == BillingInterval.WEEK:
        return moment + timedelta(weeks=count)
    return moment + timedelta(days=count)


def _timestamp(moment: datetime) -> int:
    return int(moment.timestamp())


# --- Sessions ------------------------------------------------------------------------------------------------


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
    (what `trials.billing` mirrors from Stripe), its end — `ended_at`, else `canceled_at`, else `trial_end` — in
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


def _win_back_plan(
    session: CancellationSession, offer: Offer, client: stripe.StripeClient | None, now: datetime
) -> StripePlan:
    """The requests that win back the lapsed trial: a paused one is resumed (`_resume_plan`), a canceled or
    expired one replaced (`_replace_plan`)."""
    if session.subscription.status == Subscription.Status.PAUSED:
        return _resume_plan(session, offer, now)
    return _replace_plan(session, offer, now)


def _resume_plan(session: CancellationSession, offer: Offer, now: datetime) -> StripePlan:
    """Revive the trial Stripe paused for a missing payment method, with the offer applied: a trial extension
    sets a new `trial_end` (now + days) on the paused subscription, which Stripe resumes as trialing; a
    discount attaches the offer's coupon, then `POST /v1/subscriptions/{id}/resume` with
    `billing_cycle_anchor=now` starts a new period at once — its first invoice, discounted, waits for the
    customer to pay."""
    subscription = session.subscription
    target = subscription.stripe_subscription_id or f"(test subscription {subscription.pk})"
    if offer.kind == Offer.Kind.TRIAL_EXTENSION:
        until = now + timedelta(days=int(offer.parameters["days"]))
        return StripePlan(
            [_call("update", "subscriptions.update", {"trial_end": _timestamp(until)}, target=target)], until
        )
    if offer.kind == Offer.Kind.DISCOUNT:
        coupon = _coupon_params(offer)
        return StripePlan(
            [
                _call("coupon", "coupons.create", coupon, target=coupon["id"]),
                _call("update", "subscriptions.update", {"discounts": [{"coupon": coupon["id"]}]}, target=target),
                _call("resume", "subscriptions.resume", {"billing_cycle_anchor": "now"}, target=target),
            ],
            _win_back_discount_end(offer, now),
        )
    raise WrongState("This offer cannot win back a lapsed trial; edit the rule.", code="offer_invalid")


def _replace_plan(session: CancellationSession, offer: Offer, now: datetime) -> StripePlan:
    """A new subscription to the lapsed trial's price for the same customer (Stripe cannot revive a canceled or
    expired subscription): with `trial_end` = now + days for a trial extension, or with the offer's coupon for
    a discount — then `payment_behavior=default_incomplete`, so a customer without a card is not charged and
    failed, and the first invoice waits for them to pay. The metadata names the session and the old trial."""
    subscription = session.subscription
    customer_id = session.customer.stripe_customer_id or f"(test customer {session.customer_id})"
    price = subscription.plan.stripe_price_id or f"(price of plan {subscription.plan_id})"
    create: dict[str, Any] = {
        "customer": customer_id,
        "items": [{"price": price, "quantity": subscription.quantity}],
        "metadata": {
            "trialloop_win_back_session": session.token,
            "trialloop_lapsed_subscription": subscription.stripe_subscription_id or "",
        },
    }
    calls: list[dict[str, Any]] = []
    if offer.kind == Offer.Kind.TRIAL_EXTENSION:
        until = now + timedelta(days=int(offer.parameters["days"]))
        create["trial_end"] = _timestamp(until)
        active_until: datetime | None = until
    elif offer.kind == Offer.Kind.DISCOUNT:
        coupon = _coupon_params(offer)
        calls.append(_call("coupon", "coupons.create", coupon, target=coupon["id"]))
        create["discounts"] = [{"coupon": coupon["id"]}]
        create["payment_behavior"] = "default_incomplete"
        active_until = _win_back_discount_end(offer, now)
    else:
        raise WrongState("This offer cannot win back a lapsed trial; edit the rule.", code="offer_invalid")
    calls.append(_call("create", "subscriptions.create", create, target=None))
    return StripePlan(calls, active_until)


def _win_back_discount_end(offer: Offer, now: datetime) -> datetime | None:
    if offer.parameters["duration"] == "repeating":
        return add_months(now, int(offer.parameters["duration_in_months"]))
    return None  # once: the first invoice, whenever it is paid; forever: no end


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
            _session_announce(session, now)
            return session
        if session.stage == CancellationSession.Stage.CONFIRM:
            return session
        if session.stage != CancellationSession.Stage.OFFER:
            raise WrongState("There is no offer to decline yet.", code="no_offer")
        session.stage = CancellationSession.Stage.CONFIRM
        session.save(update_fields=["stage", "updated_at"])
        _step_record(session, SessionStep.Kind.DECLINE, data={"offer": session.offered_offer_id})
    return session


# --- Planning the Stripe requests ----------------------------------------------------------------------------


@dataclass
class StripePlan:
    """What a step will send to Stripe, and what accepting means for the session."""

    calls: list[dict[str, Any]]
    active_until: datetime | None


def _call(name: str, method: str, params: dict[str, Any], *, target: str | None = None) -> dict[str, Any]:
    return {"name": name, "method": method, "target": target, "params": params, "status": "planned"}


def coupon_id_for(offer: Offer) -> str:
    """A coupon id derived from the offer and its discount, so every session of the offer reuses one coupon and
    editing the discount makes a new one (Stripe coupons cannot change their amount or duration)."""
    params = offer.parameters
    fingerprint = "|".join(
        str(params.get(key) or "")
        for key in ("percent_off", "amount_off_cents", "currency", "duration", "duration_in_months")
    )
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:10]
    return f"trialloop_offer_{offer.pk}_{digest}"


def _coupon_params(offer: Offer) -> dict[str, Any]:
    params = offer.parameters
    coupon: dict[str, Any] = {"id": coupon_id_for(offer), "name": offer.name[:40], "duration": params["duration"]}
    if params["duration"] == "repeating":
        coupon["duration_in_months"] = params["duration_in_months"]
    if "percent_off" in params:
        coupon["percent_off"] = params["percent_off"]
    else:
        coupon["amount_off"] = params["amount_off_cents"]
        coupon["currency"] = params["currency"]
    return coupon


def _live_subscription(client: stripe.StripeClient, subscription_id: str) -> dict[str, Any]:
    result: dict[str, Any] = client.v1.subscriptions.retrieve(subscription_id).to_dict()
    return result


def _discount_end(offer: Offer, subscription: Subscription, now: datetime) -> datetime | None:
    params = offer.parameters
    if params["duration"] == "forever":
        return None
    if params["duration"] == "repeating":
        return add_months(now, int(params["duration_in_months"]))
    # once: the next invoice is discounted, and it pays for the period after the current one.
    period_end = (
        subscription.current_period_end
        if subscription.current_period_end and subscription.current_period_end > now
        else now
    )
    return add_interval(period_end, subscription.plan.interval, subscription.plan.interval_count)


def _accept_plan(
    session: CancellationSession, offer: Offer, client: stripe.StripeClient | None, now: datetime
) -> StripePlan:
    """The requests that apply `offer` to the session's subscription; `client` is None in a test session, where
    values only Stripe knows (subscription item, existing discounts) are written as placeholders."""
    subscription = session.subscription
    target = subscription.stripe_subscription_id or f"(test subscription {subscription.pk})"
    params = offer.parameters
    if offer.kind == Offer.Kind.DISCOUNT:
        coupon = _coupon_params(offer)
        discounts: list[dict[str, str]] = []
        if params.get("existing_coupon") == "keep":
            if client is not None:
                current = _live_subscription(client, target)
                discounts = [{"discount": d if isinstance(d, str) else d["id"]} for d in current.get("discounts") or []]
            elif subscription.coupon_id:
                discounts = [{"discount": f"(current discount of coupon {subscription.coupon_id})"}]
        discounts.append({"coupon": coupon["id"]})
        return StripePlan(
            [
                _call("coupon", "coupons.create", coupon, target=coupon["id"]),
                _call("update", "subscriptions.update", {"discounts": discounts}, target=target),
            ],
            _discount_end(offer, subscription, now),
        )
    if offer.kind == Offer.Kind.TRIAL_EXTENSION:
        base = subscription.trial_end if subscription.trial_end and subscription.trial_end > now else now
        trial_end = base + timedelta(days=int(params["days"]))
        return StripePlan(
            [_call("update", "subscriptions.update", {"trial_end": _timestamp(trial_end)}, target=target)], trial_end
        )
    if offer.kind == Offer.Kind.PAUSE:
        if "until" in params:
            resumes = datetime.combine(date.fromisoformat(params["until"]), time.min, tzinfo=UTC)
            if resumes <= now:
                raise WrongState("This pause offer ends in the past; edit the offer.", code="offer_expired")
        elif params["unit"] == "months":
            resumes = add_months(now, int(params["count"]))
        else:
            resumes = now + timedelta(**{params["unit"]: int(params["count"])})
        pause = {"behavior": "void", "resumes_at": _timestamp(resumes)}
        return StripePlan(
            [_call("update", "subscriptions.update", {"pause_collection": pause}, target=target)], resumes
        )
    if offer.kind == Offer.Kind.PLAN_CHANGE:
        new_plan = Plan.objects.filter(pk=params["plan_id"]).first()
        if new_plan is None or not new_plan.stripe_price_id:
            raise WrongState("This offer's plan no longer exists in Stripe; edit the offer.", code="offer_invalid")
        item_id = f"(item of {subscription.plan.stripe_price_id or 'the current plan'})"
        if client is not None:
            items = _live_subscription(client, target)["items"]["data"]
            current_price = subscription.plan.stripe_price_id
            item = next((i for i in items if i["price"]["id"] == current_price), items[0] if items else None)
            if item is None:
                raise SessionError("The subscription has no item to change.", code="no_item")
            item_id = item["id"]
        update = {
            "items": [{"id": item_id, "price": new_plan.stripe_price_id}],
            "proration_behavior": params["proration_behavior"],
        }
        return StripePlan([_call("update", "subscriptions.update", update, target=target)], None)
    raise SessionError(f"Offers of kind {offer.kind} are not applied through Stripe.", code="not_applicable")


def _cancel_plan(session: CancellationSession) -> StripePlan:
    """Cancel at period end (an update) or at once (a cancel), with the reason's Stripe feedback and comment."""
    target = session.subscription.stripe_subscription_id or f"(test subscription {session.subscription_id})"
    details: dict[str, str] = {}
    if session.reason is not None:
        details["feedback"] = session.reason.stripe_feedback
    if session.feedback:
        details["comment"] = session.feedback
    if session.flow.cancel_immediately:
        params: dict[str, Any] = {"cancellation_details": details} if details else {}
        return StripePlan([_call("cancel", "subscriptions.cancel", params, target=target)], None)
    params = {"cancel_at_period_end": True}
    if details:
        params["cancellation_details"] = details
    return StripePlan([_call("update", "subscriptions.update", params, target=target)], None)


# --- Sending -------------------------------------------------------------------------------------------------


def _retry_same_key(error: stripe.StripeError) -> bool:
    """Whether Stripe lets the same idempotency key be tried again: yes after network errors, 409, 429 and 5xx
    (nothing was stored, or the request may not have run); no after other 4xx, whose answer is stored."""
    status = error.http_status
    return status is None or status >= 500 or status in (409, 429)


def _summary(obj: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "object",
        "status",
        "trial_end",
        "cancel_at_period_end",
        "cancel_at",
        "discounts",
        "pause_collection",
        "duration",
        "percent_off",
        "amount_off",
    )
    return {key: obj[key] for key in keys if key in obj}


def _send(client: stripe.StripeClient, call: dict[str, Any], key: str) -> dict[str, Any]:
    options = cast(Any, {"idempotency_key": key})
    params = cast(Any, call["params"])
    if call["method"] == "coupons.create":
        try:
            existing: dict[str, Any] = client.v1.coupons.retrieve(call["target"]).to_dict()
        except stripe.InvalidRequestError as missing:
            if missing.code != "resource_missing":
                raise
        else:
            return {**_summary(existing), "reused": True}
        return _summary(client.v1.coupons.create(params, options).to_dict())
    if call["method"] == "subscriptions.update":
        return _summary(client.v1.subscriptions.update(call["target"], params, options).to_dict())
    if call["method"] == "subscriptions.create":
        return _summary(client.v1.subscriptions.create(params, options).to_dict())
    if call["method"] == "subscriptions.resume":
        return _summary(client.v1.subscriptions.resume(call["target"], params, options).to_dict())
    if call["method"] == "subscriptions.cancel":
        return _summary(client.v1.subscriptions.cancel(call["target"], params, options).to_dict())
    raise ValueError(f"unknown Stripe method {call['method']}")


def _key(session: CancellationSession, step: SessionStep, call: dict[str, Any]) -> str:
    return f"trialloop:{session.token}:{step.kind}:{call['name']}:{step.key_generation}"


def _run_step(
    session: CancellationSession,
    kind: str,
    plan: Any,
    *,
    data: dict[str, Any],
) -> tuple[SessionStep, StripeStepFailed | None]:
    """Plan (first attempt only) and send a step's requests; returns the recorded step and the failure, if any.

    `plan` is called with the Stripe client (None for a test session) and returns a `StripePlan`. A request that
    already succeeded in an earlier attempt is not sent again.
    """
    step = SessionStep.objects.filter(session=session, kind=kind).first()
    if step is None:
        step = SessionStep(session=session, kind=kind, status=SessionStep.Status.PENDING, data=data, attempts=0)
    elif step.status == SessionStep.Status.FAILED and step.data.get("retry_same_key") is False:
        step.key_generation += 1
    step.attempts += 1
    step.error = ""
    if session.is_test:
        built: StripePlan = plan(None)
        step.stripe_calls = [{**call, "status": "simulated"} for call in built.calls]
        step.data = {**data, "active_until": built.active_until.isoformat() if built.active_until else None}
        step.status = SessionStep.Status.SIMULATED
        step.save()
        return step, None
    try:
        client = stripe_client()
    except StripeNotConfigured as missing:
        step.status, step.error = SessionStep.Status.FAILED, str(missing)
        step.save()
        raise StripeUnavailable("Stripe is not configured on this Trialloop (STRIPE_API_KEY).") from missing
    failure: StripeStepFailed | None = None
    try:
        if not step.stripe_calls:
            built = plan(client)
            step.stripe_calls = built.calls
            step.data = {**data, "active_until": built.active_until.isoformat() if built.active_until else None}
        for call in step.stripe_calls:
            if call["status"] == "succeeded":
                continue
            call["idempotency_key"] = _key(session, step, call)
            try:
                call["response"] = _send(client, call, call["idempotency_key"])
            except stripe.StripeError as error:
                call["status"] = "failed"
                call["error"] = {"http_status": error.http_status, "code": error.code, "message": str(error)}
                raise
            call["status"] = "succeeded"
    except stripe.StripeError as error:
        same_key = _retry_same_key(error)
        message = error.user_message or str(error) or type(error).__name__
        failure = StripeStepFailed(
            f"Stripe could not apply this step: {message}",
            stripe_status=error.http_status,
            stripe_code=error.code,
            retry_same_key=same_key,
        )
        step.status, step.error = SessionStep.Status.FAILED, failure.message
        step.data = {**step.data, "retry_same_key": same_key}
    else:
        step.status = SessionStep.Status.SUCCEEDED
        step.data = {key: value for key, value in step.data.items() if key != "retry_same_key"}
    step.save()
    return step, failure


# --- Timeline and destinations ----------------------------------------------------------------------------

OFFER_ACCEPTED_EVENT = "Offer Accepted"
SESSION_COMPLETED_EVENT = "Cancellation Session Completed"


def _offer_properties(offer: Offer | None) -> dict[str, Any]:
    if offer is None:
        return {"offer_id": None, "offer_name": None, "offer_kind": None}
    return {"offer_id": offer.pk, "offer_name": offer.name, "offer_kind": offer.kind}


def session_properties(session: CancellationSession, reason_label: str | None = None) -> dict[str, Any]:
    """What the timeline events and outbound messages say about a session: outcome, reason, offer and MRR."""
    reason = session.reason if session.reason_id else None
    return {
        "session_token": session.token,
        "session_kind": session.kind,
        "outcome": session.outcome,
        "reason_id": session.reason_id,
        "reason": reason_label if reason_label is not None else (reason.label if reason else None),
        "stripe_feedback": reason.stripe_feedback if reason else None,
        **_offer_properties(session.accepted_offer or session.offered_offer),
        "offer_accepted": session.accepted_offer_id is not None,
        "mrr": round(session.mrr_cents / 100, 2) if session.mrr_cents is not None else None,
        "is_test": session.is_test,
    }


def _timeline_events(rows: Sequence[tuple[CancellationSession, str, str, dict[str, Any]]], at: datetime) -> None:
    """Record (session, step, event name, properties) on the customers' timelines under Trialloop's internal
    source. The message id is `offers:<token>:<step>`: the (source, message id) constraint makes a move that
    runs twice — a retry, a double click — record its event once."""
    if not rows:
        return
    source = internal_source()
    Event.objects.bulk_create(
        [
            Event(
                source=source,
                message_id=f"offers:{session.token}:{step}",
                customer_id=session.customer_id,
                type=Event.Type.TRACK,
                name=name,
                properties=properties,
                timestamp=at,
                received_at=at,
            )
            for session, step, name, properties in rows
        ],
        ignore_conflicts=True,
    )


def _session_announce(session: CancellationSession, now: datetime) -> None:
    """Tell the customer's timeline how the session ended ("Offer Accepted" first when an offer was accepted)
    and send acceptances to destinations (OutboundKind.OFFER_ACCEPTED, key `offer_accepted:<token>`: one per
    session whatever the retries). Test sessions go on the (test) customer's timeline but not to destinations,
    as they reach no Stripe either. Called inside the move's transaction, so nothing is told of a move that
    rolled back."""
    properties = session_properties(session)
    rows: list[tuple[CancellationSession, str, str, dict[str, Any]]] = []
    if session.accepted_offer_id is not None:
        rows.append((session, "accept", OFFER_ACCEPTED_EVENT, properties))
    rows.append((session, "completed", SESSION_COMPLETED_EVENT, properties))
    _timeline_events(rows, now)
    if session.accepted_offer_id is not None and not session.is_test:
        outbound_emit(
            [
                Outbound(
                    kind=OutboundKind.OFFER_ACCEPTED,
                    customer_id=session.customer_id,
                    idempotency_key=f"offer_accepted:{session.token}",
                    occurred_at=now,
                    data={
                        "offer": offer_payload_brief(session.accepted_offer),
                        "session": properties,
                    },
                )
            ]
        )


def offer_payload_brief(offer: Offer | None) -> dict[str, Any] | None:
    """The offer as destinations receive it."""
    if offer is None:
        return None
    return {"id": offer.pk, "name": offer.name, "kind": offer.kind, "parameters": offer.parameters}


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
            _session_announce(session, now)
            return session
        win_back = session.kind == CancellationSession.Kind.WIN_BACK
        planner = _win_back_plan if win_back else _accept_plan
        step, failure = _run_step(
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
            _session_announce(session, now)
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
        _, failure = _run_step(
            session,
            SessionStep.Kind.CONFIRM_CANCEL,
            lambda client: _cancel_plan(session),
            data={"immediately": session.flow.cancel_immediately},
        )
        session.stage = CancellationSession.Stage.CONFIRM
        if failure is None:
            session.outcome, session.outcome_at = CancellationSession.Outcome.CANCELED, now
            session.stage = CancellationSession.Stage.DONE
        session.save()
        if failure is None:
            _session_announce(session, now)
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
        _timeline_events(rows, now)
    return updated


def sessions_expire(*, now: datetime | None = None) -> int:
    """Incomplete sessions older than 24 hours become deflected (the customer left without canceling), dated
    when their 24 hours ran out. One set-based UPDATE; running it twice changes nothing."""
    return _expire(CancellationSession.objects.all(), now or timezone.now())


# --- "Used by" for segments ----------------------------------------------------------------------------------


def segment_uses_in_offers(segment: Segment) -> list[SegmentUse]:
    """The active offer and flow rules that read a segment, for the segment editor's test-mode warning."""
    uses: list[SegmentUse] = []
    for offer_rule in OfferRule.objects.filter(segments=segment, is_active=True).order_by("position", "pk"):
        mode = "draft" if offer_rule.is_draft else "live"
        uses.append(SegmentUse(kind=f"offer rule ({mode})", name=str(offer_rule), url=reverse("offers:rule-list")))
    for flow_rule in FlowRule.objects.filter(segments=segment, is_active=True).select_related("flow"):
        mode = "draft" if flow_rule.is_draft else "live"
        uses.append(SegmentUse(kind=f"flow rule ({mode})", name=str(flow_rule), url=reverse("offers:rule-list")))
    return uses
