"""Subscriber properties read from cancellation sessions: the offer still running, and the days since saved."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from audiences.models import Customer
from integrations.stripe.models import Plan, Subscription
from offers.models import CancellationFlow, CancellationSession, Offer
from segments.selectors import explain, segment_preview

pytestmark = pytest.mark.django_db


def tree(prop: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"type": "group", "operator": "and", "children": [
        {"type": "condition", "property": prop, "operator": operator, "value": value},
    ]}  # fmt: skip


def matching(conditions: dict[str, Any]) -> set[str]:
    ids = {row["id"] for row in segment_preview(conditions)["sample"]}
    return {str(user_id) for user_id in Customer.objects.filter(pk__in=ids).values_list("user_id", flat=True)}


@pytest.fixture
def people(plan: Plan) -> dict[str, Customer]:
    """Ada saved 2 days ago by a 3-month discount; Bob saved 40 days ago by a pause that has ended; Cy canceled."""
    now = timezone.now()
    flow = CancellationFlow.objects.create(name="Default", is_draft=False)
    discount = Offer.objects.create(name="25% for 3 months", kind="discount", parameters={})
    pause = Offer.objects.create(name="Pause a month", kind="pause", parameters={})
    found = {}
    for user, offer, outcome, saved_ago, active_until in (
        ("ada", discount, "saved", 2, now + timedelta(days=80)),
        ("bob", pause, "saved", 40, now - timedelta(days=10)),
        ("cy", None, "canceled", 5, None),
    ):
        person = Customer.objects.create(user_id=user)
        subscription = Subscription.objects.create(customer=person, plan=plan, status="active", started_at=now)
        session_at: datetime = now - timedelta(days=saved_ago)
        CancellationSession.objects.create(
            token=f"tok-{user}", customer=person, subscription=subscription, flow=flow, accepted_offer=offer,
            offer_active_until=active_until, outcome=outcome, outcome_at=session_at,
        )  # fmt: skip
        found[user] = person
    Customer.objects.create(user_id="dee")  # never in a cancellation flow
    return found


@pytest.mark.parametrize(
    ("prop", "operator", "value", "expected"),
    [
        ("subscriber.active_offer_id", "is_set", None, {"ada"}),
        ("subscriber.active_offer_id", "is_not_set", None, {"bob", "cy", "dee"}),
        ("subscriber.days_since_saved", "lte", 7, {"ada"}),
        ("subscriber.days_since_saved", "gt", 30, {"bob"}),
        ("subscriber.days_since_saved", "is_set", None, {"ada", "bob"}),
        ("subscriber.days_since_saved", "not_equals", 2, {"bob", "cy", "dee"}),
    ],
)
def test_offer_properties(
    people: dict[str, Customer], prop: str, operator: str, value: Any, expected: set[str]
) -> None:
    conditions = tree(prop, operator, value)
    assert matching(conditions) == expected
    for person in Customer.objects.all():
        assert explain(conditions, person)["matches"] is (person.user_id in expected)


def test_the_active_offer_id_is_the_accepted_offer(people: dict[str, Customer]) -> None:
    discount = Offer.objects.get(name="25% for 3 months")
    assert matching(tree("subscriber.active_offer_id", "equals", discount.pk)) == {"ada"}
    assert matching(tree("subscriber.active_offer_id", "not_equals", discount.pk)) == {"bob", "cy", "dee"}
    leaf = explain(tree("subscriber.active_offer_id", "equals", discount.pk), people["ada"])["leaves"][0]
    assert leaf["actual"] == [discount.pk]
    leaf = explain(tree("subscriber.days_since_saved", "lte", 7), people["ada"])["leaves"][0]
    assert leaf["actual"] == 2
