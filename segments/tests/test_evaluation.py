"""Materialised membership: evaluation writes only the difference, with enter/exit history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import DatabaseError

from audiences.models import Customer
from config.locks import task_lock
from segments.evaluation import segment_evaluate
from segments.models import Segment, SegmentMembership, SegmentMembershipChange
from segments.services import segment_save

HIGH_MRR = {"type": "condition", "property": "subscriber.mrr", "operator": "gte", "value": 100}


@pytest.fixture
def segment(db: Any) -> Segment:
    return segment_save(name="High MRR", conditions=HIGH_MRR, tags=["revenue", "cs"])


def members(segment: Segment) -> set[str]:
    return {
        str(u) for u in SegmentMembership.objects.filter(segment=segment).values_list("customer__user_id", flat=True)
    }


def changes(segment: Segment) -> list[tuple[str, str]]:
    rows = SegmentMembershipChange.objects.filter(segment=segment).order_by("id")
    return [(str(user_id), kind) for user_id, kind in rows.values_list("customer__user_id", "kind")]


@pytest.mark.django_db
def test_enter_exit_and_a_no_op(segment: Segment) -> None:
    ada = Customer.objects.create(user_id="ada", mrr_cents=20000)
    Customer.objects.create(user_id="bob", mrr_cents=5000)
    first = segment_evaluate(segment=segment)
    assert (first.entered, first.exited, first.members) == (1, 0, 1)
    assert members(segment) == {"ada"}

    Customer.objects.filter(user_id="bob").update(mrr_cents=15000)
    Customer.objects.filter(pk=ada.pk).update(mrr_cents=0)
    second = segment_evaluate(segment=segment)
    assert (second.entered, second.exited, second.members) == (1, 1, 1)
    assert members(segment) == {"bob"}
    assert changes(segment) == [("ada", "entered"), ("ada", "exited"), ("bob", "entered")]  # exits recorded first

    memberships_before = list(SegmentMembership.objects.values_list("pk", "customer_id", "entered_at"))
    third = segment_evaluate(segment=segment)
    assert (third.entered, third.exited) == (0, 0)
    assert list(SegmentMembership.objects.values_list("pk", "customer_id", "entered_at")) == memberships_before
    assert SegmentMembershipChange.objects.count() == 3  # nothing new was written
    segment.refresh_from_db()
    assert segment.member_count == 1
    assert segment.last_evaluation_ms is not None


@pytest.mark.django_db
def test_an_evaluation_already_running_is_not_overlapped(segment: Segment) -> None:
    Customer.objects.create(user_id="ada", mrr_cents=20000)
    with task_lock(f"segment:{segment.pk}"):
        skipped = segment_evaluate(segment=segment)
    assert (skipped.entered, skipped.milliseconds) == (0, 0)
    assert not SegmentMembership.objects.exists()


@pytest.mark.django_db
def test_saving_stores_the_canonical_tree_and_tags(segment: Segment) -> None:
    assert segment.conditions["type"] == "group"
    assert segment.conditions["children"][0]["value"] == 100.0
    assert sorted(segment.tags.values_list("name", flat=True)) == ["cs", "revenue"]


@pytest.mark.django_db
def test_membership_of_another_segment_and_cycles(segment: Segment) -> None:
    from segments.conditions import InvalidCondition
    from segments.selectors import explain

    ada = Customer.objects.create(user_id="ada", mrr_cents=20000, is_test=False)
    bob = Customer.objects.create(user_id="bob", mrr_cents=20000, is_test=True)
    Customer.objects.create(user_id="cy", mrr_cents=0)
    real_high = segment_save(
        name="Real high MRR",
        conditions={"type": "group", "operator": "and", "children": [
            {"type": "segment", "segment": segment.pk, "operator": "in"},
            {"type": "condition", "property": "customer.is_test", "operator": "is_false"},
        ]},
    )  # fmt: skip
    segment_evaluate(segment=real_high)
    assert members(real_high) == {"ada"}
    outside = segment_save(name="Not high", conditions={"type": "segment", "segment": segment.pk, "operator": "not_in"})
    segment_evaluate(segment=outside)
    assert members(outside) == {"cy"}
    assert explain(real_high.conditions, bob)["leaves"][0] == {
        "path": "children[0]", "description": "in segment “High MRR”", "actual": None, "held": True,
    }  # fmt: skip
    assert explain(real_high.conditions, ada)["matches"] is True

    with pytest.raises(InvalidCondition, match="refers back to itself"):
        segment_save(
            segment=segment, name="High MRR", conditions={"type": "segment", "segment": real_high.pk, "operator": "in"}
        )
    with pytest.raises(InvalidCondition, match="no segment 999"):
        segment_save(name="Ghost", conditions={"type": "segment", "segment": 999, "operator": "in"})


@pytest.mark.django_db
def test_the_periodic_job_skips_a_broken_segment_and_evaluates_the_rest(segment: Segment) -> None:
    from config.models import TaskRun
    from segments.models import CustomProperty
    from segments.tasks import evaluate_segments

    Customer.objects.create(user_id="ada", mrr_cents=20000)
    CustomProperty.objects.create(key="tier", value_type="string")
    broken = segment_save(
        name="Gold", conditions={"type": "condition", "property": "trait.tier", "operator": "equals", "value": "gold"}
    )
    CustomProperty.objects.all().delete()
    totals = evaluate_segments.delay().get()
    assert totals == {"segments": 1, "entered": 1, "exited": 0, "failing": 1}
    assert (
        "unknown property 'trait.tier'"
        in TaskRun.objects.get(name="segment evaluation").detail["failing_segments"][broken.name]
    )
    assert members(segment) == {"ada"}
    broken.refresh_from_db()
    assert broken.evaluation_failure.startswith("evaluation failing since ")
    assert "unknown property 'trait.tier'" in broken.evaluation_error


@pytest.fixture
def one_breaks(monkeypatch: pytest.MonkeyPatch) -> Callable[[Segment | None], None]:
    """Make evaluating one segment fail in the database (a statement naming a table that does not exist) — any
    error other than an invalid tree, as a bug or an outage would raise."""
    from segments import evaluation

    real = evaluation._members_sql
    broken: list[int] = []

    def members_sql(segment: Segment, now: Any) -> tuple[str, tuple[Any, ...]]:
        if segment.pk in broken:
            return "SELECT id AS member_id FROM no_such_table_here", ()
        return real(segment, now)

    monkeypatch.setattr(evaluation, "_members_sql", members_sql)

    def choose(segment: Segment | None) -> None:
        broken[:] = [segment.pk] if segment is not None else []

    return choose


@pytest.mark.django_db
def test_a_segment_failing_for_any_reason_is_skipped_and_marked(
    segment: Segment, one_breaks: Callable[[Segment | None], None]
) -> None:
    from config.models import TaskRun
    from segments.tasks import evaluate_segments

    Customer.objects.create(user_id="ada", mrr_cents=20000)
    Customer.objects.create(user_id="bob", mrr_cents=0)
    broken = segment_save(name="Broken", conditions=HIGH_MRR)
    low = segment_save(name="Low MRR", conditions={**HIGH_MRR, "operator": "lt"})  # evaluated after the broken one
    one_breaks(broken)

    totals = evaluate_segments.delay().get()

    assert totals == {"segments": 2, "entered": 2, "exited": 0, "failing": 1}
    assert members(segment) == {"ada"} and members(low) == {"bob"}
    reason = TaskRun.objects.get(name="segment evaluation").detail["failing_segments"]["Broken"]
    assert "no_such_table_here" in reason  # the database's own words, not "current transaction is aborted"
    broken.refresh_from_db()
    first_failure = broken.evaluation_failing_since
    assert first_failure is not None and "no_such_table_here" in broken.evaluation_error
    assert not SegmentMembership.objects.filter(segment=broken).exists()

    evaluate_segments.delay().get()  # still failing: since when stays the first failure
    broken.refresh_from_db()
    assert broken.evaluation_failing_since == first_failure

    one_breaks(None)
    segment_evaluate(segment=broken)
    cleared = Segment.objects.get(pk=broken.pk)
    assert (cleared.evaluation_failing_since, cleared.evaluation_error, cleared.evaluation_failure) == (None, "", "")
    assert members(broken) == {"ada"}


@pytest.mark.django_db
def test_a_failing_segment_is_shown_failing_in_the_api_and_the_ui(
    segment: Segment,
    one_breaks: Callable[[Segment | None], None],
    admin_user: Any,
    api_client_for: Callable[[Any], Any],
    client: Any,
) -> None:
    one_breaks(segment)
    with pytest.raises(DatabaseError):
        segment_evaluate(segment=segment)
    body = api_client_for(admin_user).get(f"/api/v1/segments/{segment.pk}/").json()
    assert body["evaluation_failure"].startswith("evaluation failing since ")
    assert "no_such_table_here" in body["evaluation_failure"] and "no_such_table_here" in body["evaluation_error"]
    client.force_login(admin_user)
    for url in ("/segments/", f"/segments/{segment.pk}/"):
        page = client.get(url).content.decode()
        assert "valuation failing since" in page and "no_such_table_here" in page, url
