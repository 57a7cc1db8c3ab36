"""What offers add to the condition language: the offers a customer accepted that still run
(`subscriber.active_offer_id`) and the days since they were last saved (`subscriber.days_since_saved`), read from
their saved cancellation sessions and registered into the segment catalogue with their condition builders from
OffersConfig.ready() — the conditions layer sits below offers and never imports them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery

from audiences.models import Customer
from offers.models import CancellationSession
from segments.catalogue import PropertySpec, register_properties
from segments.compiler import ALWAYS, POSITIVE_OF, compare, days_q
from segments.value_types import ValueType


def _saved_sessions() -> QuerySet[CancellationSession]:
    """The customer's cancellation sessions that ended saved (an offer accepted)."""
    return CancellationSession.objects.filter(customer=OuterRef("pk"), outcome=CancellationSession.Outcome.SAVED)


def active_offer_q(spec: PropertySpec, operator: str, value: Any, now: datetime) -> Q:
    """An offer the customer accepted whose effect still runs (no end, or an end still ahead); negative operators
    are the negation, so a customer without an active offer matches them."""
    positive = POSITIVE_OF.get(operator, operator)
    active = _saved_sessions().filter(Q(offer_active_until__isnull=True) | Q(offer_active_until__gt=now))
    active = active.filter(accepted_offer__isnull=False)
    held = ALWAYS if positive == "is_set" else compare(spec.path, spec.value_type, positive, value, now)
    q = Q(Exists(active.filter(held)))
    return ~q if positive != operator else q


def days_since_saved_q(spec: PropertySpec, operator: str, value: Any, now: datetime) -> Q:
    """Whole days since the customer was last saved, compared with N (a customer never saved has no value)."""
    latest = _saved_sessions().order_by("-outcome_at").values("outcome_at")[:1]
    positive = POSITIVE_OF.get(operator, operator)
    if positive == "is_set":
        held = Q(Exists(_saved_sessions()))
    else:
        this_customer = Customer.objects.filter(pk=OuterRef("pk")).annotate(saved_at=Subquery(latest))
        held = Q(Exists(this_customer.filter(days_q("saved_at", positive, value, now, since=True))))
    return ~held if positive != operator else held


def saved_actual(spec: PropertySpec, customer: Customer, now: datetime) -> Any:
    """The offers a customer accepted that still run, or the days since they were last saved."""
    saved = CancellationSession.objects.filter(customer=customer, outcome=CancellationSession.Outcome.SAVED)
    if spec.derived == "active_offer":
        active = saved.filter(Q(offer_active_until__isnull=True) | Q(offer_active_until__gt=now))
        return sorted(active.exclude(accepted_offer=None).values_list("accepted_offer_id", flat=True).distinct())
    latest = saved.order_by("-outcome_at").values_list("outcome_at", flat=True).first()
    return (now - latest).days if latest is not None else None


OFFER_PROPERTIES: tuple[PropertySpec, ...] = (
    PropertySpec(
        "subscriber.active_offer_id",
        "Active offer id",
        "Subscriber",
        ValueType.NUMBER,
        "accepted_offer_id",
        derived="active_offer",
        compile=active_offer_q,
        actual=saved_actual,
    ),
    PropertySpec(
        "subscriber.days_since_saved",
        "Days since saved",
        "Subscriber",
        ValueType.NUMBER,
        "outcome_at",
        derived="days_since_saved",
        compile=days_since_saved_q,
        actual=saved_actual,
    ),
)


def register_offer_conditions() -> None:
    """Register the offers' properties with the segment catalogue (OffersConfig.ready())."""
    register_properties(OFFER_PROPERTIES)
