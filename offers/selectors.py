"""Reads of the offers app: what a session looks like to the product, and the lists and figures staff read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum

from offers.models import CancellationFlow, CancellationReason, CancellationSession, FlowRule, Offer, OfferRule
from offers.parameters import offer_summary


def flow_reasons(flow: CancellationFlow) -> list[CancellationReason]:
    """The flow's active reasons, in their order."""
    return list(flow.reasons.filter(is_active=True).order_by("position", "pk"))


def offer_payload(offer: Offer) -> dict[str, Any]:
    """An offer as the product shows it: kind, texts, a one-line summary and its parameters."""
    return {
        "id": offer.pk,
        "kind": offer.kind,
        "name": offer.name,
        "headline": offer.headline,
        "body": offer.body,
        "summary": offer_summary(offer.kind, offer.parameters),
        "parameters": offer.parameters,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def session_payload(session: CancellationSession) -> dict[str, Any]:
    """The session's state for the product: where it is, what to ask, what to offer, and how it ended."""
    flow = session.flow
    return {
        "token": session.token,
        "is_test": session.is_test,
        "stage": session.stage,
        "outcome": session.outcome,
        "outcome_at": _iso(session.outcome_at),
        "subscription_id": session.subscription.stripe_subscription_id,
        "flow": {
            "id": flow.pk,
            "name": flow.name,
            "ask_feedback": flow.ask_feedback,
            "feedback_prompt": flow.feedback_prompt,
            "confirmation_message": flow.confirmation_message,
            "cancels_at_period_end": not flow.cancel_immediately,
        },
        "reasons": [{"id": reason.pk, "label": reason.label} for reason in flow_reasons(flow)],
        "reason_id": session.reason_id,
        "offer": offer_payload(session.offered_offer) if session.offered_offer else None,
        "accepted_offer_id": session.accepted_offer_id,
        "offer_active_until": _iso(session.offer_active_until),
        "offer_simulated": session.offer_simulated,
    }


def offer_list() -> QuerySet[Offer]:
    return Offer.objects.prefetch_related("tags").order_by("name")


def offer_rule_list() -> QuerySet[OfferRule]:
    """Offer rules in the order they are tried."""
    return OfferRule.objects.prefetch_related("segments", "reasons", "weighted_offers__offer").order_by(
        "position", "pk"
    )


def flow_rule_list() -> QuerySet[FlowRule]:
    """Flow rules in the order they are tried."""
    return FlowRule.objects.select_related("flow").prefetch_related("segments").order_by("position", "pk")


def flow_list() -> QuerySet[CancellationFlow]:
    return CancellationFlow.objects.prefetch_related("reasons").order_by("name")


def session_list(*, outcome: str = "", include_test: bool = False) -> QuerySet[CancellationSession]:
    """Sessions newest first, with what the list shows joined."""
    sessions = CancellationSession.objects.select_related(
        "customer", "subscription__plan", "flow", "reason", "offered_offer", "accepted_offer"
    ).order_by("-created_at", "-pk")
    if outcome:
        sessions = sessions.filter(outcome=outcome)
    if not include_test:
        sessions = sessions.filter(is_test=False)
    return sessions


def session_report(*, since: datetime | None = None, include_test: bool = False) -> dict[str, Any]:
    """Sessions by outcome, save rate (saved ÷ sessions that ended saved or canceled) and MRR saved (the MRR,
    at session start, of the subscriptions an offer kept). One aggregate query."""
    sessions = CancellationSession.objects.all()
    if since is not None:
        sessions = sessions.filter(created_at__gte=since)
    if not include_test:
        sessions = sessions.filter(is_test=False)
    outcome = CancellationSession.Outcome
    totals = sessions.aggregate(
        total=Count("pk"),
        saved=Count("pk", filter=Q(outcome=outcome.SAVED)),
        canceled=Count("pk", filter=Q(outcome=outcome.CANCELED)),
        deflected=Count("pk", filter=Q(outcome=outcome.DEFLECTED)),
        incomplete=Count("pk", filter=Q(outcome=outcome.INCOMPLETE)),
        mrr_saved_cents=Sum("mrr_cents", filter=Q(outcome=outcome.SAVED)),
    )
    decided = totals["saved"] + totals["canceled"]
    return {
        **totals,
        "mrr_saved_cents": totals["mrr_saved_cents"] or 0,
        "save_rate": round(totals["saved"] / decided, 4) if decided else None,
    }
