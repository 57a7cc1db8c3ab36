"""Which flow and which offer a customer gets: rules tried in order (first match wins), segments decided for one
customer (drafts for test customers), weighted picks that stay the same for a session, and the repeat window."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from audiences.models import Customer
from offers.models import (
    CancellationFlow,
    CancellationReason,
    CancellationSession,
    FlowRule,
    Offer,
    OfferRule,
    OfferRuleOffer,
)
from segments.compiler import compile_tree
from segments.conditions import InvalidCondition, parse_tree
from segments.models import Segment
from segments.selectors import segment_draft_members

logger = logging.getLogger(__name__)

WIN_BACK_KINDS = (Offer.Kind.DISCOUNT, Offer.Kind.TRIAL_EXTENSION, Offer.Kind.REDIRECT)
"""What a win-back session can offer: a new subscription with a discount or a new trial, or a way to support.
Pausing or changing the plan of a subscription that no longer runs means nothing."""


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
