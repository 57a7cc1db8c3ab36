"""Migration segments.0007 on a populated database: members of live audiences were published before (so are
marked published and are not announced again), members of plain segments were not."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from config.tests.migrating import migrate_to

BEFORE = [("segments", "0006_segment_evaluation_failure"), ("audiences", "0011_mrr_by_currency_trial_windows")]
AFTER = [("segments", "0007_membership_published")]


@pytest.fixture(autouse=True)
def latest_schema_after() -> Iterator[None]:
    """Migrations run back to an older state here; the tests after this one need every table of the latest."""
    yield
    migrate_to()


@pytest.mark.django_db(transaction=True)
def test_members_of_live_audiences_are_marked_published() -> None:
    old = migrate_to(BEFORE)
    Customer, Segment, Membership = (
        old.get_model("audiences", "Customer"),
        old.get_model("segments", "Segment"),
        old.get_model("segments", "SegmentMembership"),
    )
    at = datetime(2026, 9, 1, tzinfo=UTC)
    ada, bob = Customer.objects.create(user_id="ada"), Customer.objects.create(user_id="bob")
    live = Segment.objects.create(name="Live", conditions={}, is_live=True)
    plain = Segment.objects.create(name="Plain", conditions={})
    for segment in (live, plain):
        for customer in (ada, bob):
            Membership.objects.create(segment=segment, customer=customer, entered_at=at)

    new = migrate_to(AFTER)
    rows = new.get_model("segments", "SegmentMembership").objects.order_by("segment_id", "customer_id")
    assert [(r.segment_id, r.published_at) for r in rows] == [
        (live.pk, at),
        (live.pk, at),
        (plain.pk, None),
        (plain.pk, None),
    ]
