"""What a session's outcome tells others: events on the customer's timeline and messages to the destinations,
written inside the move's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from audiences.models import Event
from audiences.services import internal_source
from config.facts import Fact, FactKind, facts_record
from offers.models import (
    CancellationSession,
    Offer,
)

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


def timeline_events_record(rows: Sequence[tuple[CancellationSession, str, str, dict[str, Any]]], at: datetime) -> None:
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


def session_announce(session: CancellationSession, now: datetime) -> None:
    """Tell the customer's timeline how the session ended ("Offer Accepted" first when an offer was accepted)
    and send acceptances to destinations (FactKind.OFFER_ACCEPTED, key `offer_accepted:<token>`: one per
    session whatever the retries). Test sessions go on the (test) customer's timeline but not to destinations,
    as they reach no Stripe either. Called inside the move's transaction, so nothing is told of a move that
    rolled back."""
    properties = session_properties(session)
    rows: list[tuple[CancellationSession, str, str, dict[str, Any]]] = []
    if session.accepted_offer_id is not None:
        rows.append((session, "accept", OFFER_ACCEPTED_EVENT, properties))
    rows.append((session, "completed", SESSION_COMPLETED_EVENT, properties))
    timeline_events_record(rows, now)
    if session.accepted_offer_id is not None and not session.is_test:
        facts_record(
            [
                Fact(
                    kind=FactKind.OFFER_ACCEPTED,
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
