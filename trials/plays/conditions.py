"""What sales assist adds to the condition language: whether a rep logged a meeting with the customer or their
account (`sales.meeting_logged`), registered into the segment catalogue with its condition builders by
TrialsConfig.ready() — the conditions layer sits below the plays and never imports them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef, Q

from audiences.models import Customer
from segments.catalogue import PropertySpec, register_properties
from segments.compiler import ALWAYS, NEVER
from segments.value_types import ValueType
from trials.plays.models import Alert


def meeting_logged_q(spec: PropertySpec, operator: str, value: Any, now: datetime) -> Q:
    """A rep closed an alert on the customer, or on the customer's account, with a meeting booked."""
    meetings = Alert.objects.filter(outcome=Alert.Outcome.MEETING_BOOKED)
    logged = Q(Exists(meetings.filter(customer=OuterRef("pk")))) | Q(
        Exists(meetings.filter(account_id=OuterRef("account_id"), account_id__isnull=False))
    )
    return {"is_true": logged, "is_false": ~logged, "is_set": ALWAYS, "is_not_set": NEVER}[operator]


def meeting_logged_actual(spec: PropertySpec, customer: Customer, now: datetime) -> Any:
    """Whether a rep logged a meeting with the customer or their account, as the plays' conditions compare it."""
    meetings = Alert.objects.filter(outcome=Alert.Outcome.MEETING_BOOKED)
    by_account = Q(account_id=customer.account_id) if customer.account_id is not None else Q(pk__in=[])
    return meetings.filter(Q(customer=customer) | by_account).exists()


SALES_PROPERTIES: tuple[PropertySpec, ...] = (
    PropertySpec(
        "sales.meeting_logged",
        "Meeting logged by a rep",
        "Sales",
        ValueType.BOOLEAN,
        "",
        derived="meeting_logged",
        compile=meeting_logged_q,
        actual=meeting_logged_actual,
    ),
)


def register_sales_conditions() -> None:
    """Register sales assist's properties with the conditions layer (TrialsConfig.ready())."""
    register_properties(SALES_PROPERTIES)
