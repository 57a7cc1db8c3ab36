"""The account and sales properties the default plays read (member counts, a logged meeting): segments select
by them, and explain shows the value each customer has."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from audiences.models import Account, Customer
from segments.selectors import explain, segment_preview
from trials.plays.models import Alert, Play

pytestmark = pytest.mark.django_db


def tree(prop: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"type": "group", "operator": "and", "children": [
        {"type": "condition", "property": prop, "operator": operator, "value": value},
    ]}  # fmt: skip


def matching(conditions: dict[str, Any]) -> set[str]:
    ids = {row["id"] for row in segment_preview(conditions)["sample"]}
    return {str(user_id) for user_id in Customer.objects.filter(pk__in=ids).values_list("user_id", flat=True)}


@pytest.fixture
def team() -> dict[str, Customer]:
    """Acme has three members, two seen this week; Solo has no account."""
    now = timezone.now()
    acme = Account.objects.create(group_id="grp_acme", name="Acme")
    return {
        "ann": Customer.objects.create(user_id="ann", account=acme, last_seen_at=now),
        "ben": Customer.objects.create(user_id="ben", account=acme, last_seen_at=now - timedelta(days=2)),
        "cat": Customer.objects.create(user_id="cat", account=acme, last_seen_at=now - timedelta(days=30)),
        "solo": Customer.objects.create(user_id="solo", last_seen_at=now),
    }


def test_member_counts_select_and_explain(team: dict[str, Customer]) -> None:
    assert matching(tree("account.members", "gte", 3)) == {"ann", "ben", "cat"}
    assert matching(tree("account.active_members", "equals", 2)) == {"ann", "ben", "cat"}
    assert matching(tree("account.active_members", "lt", 1)) == {"solo"}

    explained = explain(tree("account.active_members", "equals", 2), team["cat"])
    assert (explained["leaves"][0]["actual"], explained["leaves"][0]["held"]) == (2, True)
    assert explain(tree("account.members", "gte", 3), team["solo"])["leaves"][0]["actual"] == 0


def test_a_meeting_logged_on_the_account_counts_for_every_member(team: dict[str, Customer]) -> None:
    play = Play.objects.create(key="p", name="P", condition=tree("account.members", "gte", 1))
    Alert.objects.create(
        play=play,
        customer=team["ann"],
        account=team["ann"].account,
        dedup_key="a",
        status=Alert.Status.DONE,
        outcome=Alert.Outcome.MEETING_BOOKED,
        due_at=timezone.now(),
        created_at=timezone.now(),
    )

    assert matching(tree("sales.meeting_logged", "is_true")) == {"ann", "ben", "cat"}
    assert matching(tree("sales.meeting_logged", "is_false")) == {"solo"}
    assert explain(tree("sales.meeting_logged", "is_true"), team["cat"])["leaves"][0]["actual"] is True
    assert explain(tree("sales.meeting_logged", "is_true"), team["solo"])["leaves"][0]["actual"] is False
