"""Domain facts: what happened to a customer, recorded by the layer where it happened for the layers above to act on.

Layers low in the flow (profiles, intake, conditions, actions) must never call the outbound layer that sends
results away. They record a `Fact` here instead — "customer 7 entered audience 12", "an alert was raised" — and
whoever subscribed in its `AppConfig.ready` reacts. Receivers run synchronously inside the recorder's transaction,
so what they write (for instance one delivery row per destination) commits or rolls back with the fact itself: a
transactional outbox without a second table. A fact carries a key that is the same every time the same thing is
recorded, so a producer that runs twice creates nothing twice downstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import models
from django.dispatch import Signal


class FactKind(models.TextChoices):
    """What a fact is about; outbound destinations subscribe to some of these."""

    AUDIENCE_ENTERED = "audience_entered", "Audience entered"
    AUDIENCE_EXITED = "audience_exited", "Audience exited"
    TRAIT_CHANGED = "trait_changed", "Trait changed"
    BILLING_EVENT = "billing_event", "Billing event"
    ALERT_CREATED = "alert_created", "Alert created"
    OFFER_ACCEPTED = "offer_accepted", "Offer accepted"


@dataclass(frozen=True)
class Fact:
    """One thing that happened: what, to whom, when, and a key that is the same every time it is recorded (so a
    producer that runs twice causes nothing twice, and receivers outside can de-duplicate)."""

    kind: str
    customer_id: int
    idempotency_key: str
    occurred_at: datetime
    data: dict[str, Any]


# Sent with `facts=` (a tuple of Fact) inside the recorder's transaction.
facts_recorded = Signal()


def facts_record(facts: Sequence[Fact]) -> None:
    """Hand the facts to every subscriber, in the caller's transaction; nothing is sent when there are none."""
    if facts:
        facts_recorded.send(sender=Fact, facts=tuple(facts))
