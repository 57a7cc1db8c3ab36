"""Live audiences: membership follows stored events through the worker, only for what a batch could change, and
every change is published once (timeline event, outbound message, exit hooks)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import TestCase
from django.utils import timezone

from audiences.ingestion import IncomingMessage, messages_ingest
from audiences.models import ComputedTrait, Customer, Event, Source
from audiences.pipeline import on_batch_stored, remove_batch_hook, stored_events_process
from audiences.tasks import apply_events_to_profiles
from config.celery import app
from segments.audience_services import segment_live_set
from segments.conditions import parse_tree
from segments.evaluation import segment_evaluate
from segments.live.dependencies import dependencies
from segments.live.publish import on_audience_exit, remove_exit_hook
from segments.live.sweep import time_sweep
from segments.models import CustomProperty, Segment, SegmentMembership, SegmentMembershipChange
from segments.services import segment_save
from segments.tasks import evaluate_segment
from segments.traits.services import computed_trait_save

pytestmark = pytest.mark.django_db


def tree(*children: dict[str, Any], operator: str = "and") -> dict[str, Any]:
    return {"type": "group", "operator": operator, "children": list(children)}


def performed(event: str, count: int = 1, **extra: Any) -> dict[str, Any]:
    return {"type": "event", "event": event, "operator": "at_least", "count": count, **extra}


def trait_equals(key: str, value: Any) -> dict[str, Any]:
    return {"type": "condition", "property": f"trait.{key}", "operator": "equals", "value": value}


def live(name: str, conditions: dict[str, Any]) -> Segment:
    segment = segment_save(name=name, conditions=conditions)
    Segment.objects.filter(pk=segment.pk).update(is_live=True)
    segment.refresh_from_db()
    return segment


def message(
    kind: str = "track", *, user: str = "usr_ada", name: str = "", at: datetime | None = None, **traits: Any
) -> IncomingMessage:
    now = timezone.now()
    return IncomingMessage(
        type=kind,
        message_id=f"m-{time.monotonic_ns()}",
        user_id=user,
        anonymous_id=None,
        name=name,
        properties={} if kind != "identify" else traits,
        context={},
        timestamp=at or now,
        received_at=now,
        traits=traits,
    )


def ingest(source: Source, *messages: IncomingMessage) -> list[int]:
    """Store calls as the tracking API does; the worker's task runs when the batch commits (eagerly in tests)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return messages_ingest(source=source, messages=list(messages)).event_ids


def members(segment: Segment) -> set[str | None]:
    return set(SegmentMembership.objects.filter(segment=segment).values_list("customer__user_id", flat=True))


@pytest.fixture
def exit_calls() -> Iterator[list[tuple[str, list[int]]]]:
    calls: list[tuple[str, list[int]]] = []

    def hook(segment: Segment, customer_ids: list[int]) -> None:
        calls.append((segment.name, customer_ids))

    on_audience_exit(hook)
    yield calls
    remove_exit_hook(hook)


def test_an_event_moves_its_customer_into_a_live_audience_with_a_timeline_event(source: Source) -> None:
    audience = live("Reporters", tree(performed("Report Run")))
    ingest(source, message(name="Report Run"))
    assert members(audience) == {"usr_ada"}
    ada = Customer.objects.get(user_id="usr_ada")
    change = SegmentMembershipChange.objects.get(segment=audience)
    assert (change.customer_id, change.kind) == (ada.pk, "entered")
    entered = Event.objects.get(customer=ada, name="Audience Entered")
    assert entered.properties == {"audience_id": audience.pk, "audience_key": "reporters", "audience_name": "Reporters"}
    assert Source.objects.get(pk=entered.source_id).kind == Source.Kind.TRIALLOOP
    assert Segment.objects.get(pk=audience.pk).member_count == 1


def test_a_changed_trait_moves_the_customer_out_and_runs_the_exit_hooks(
    source: Source, exit_calls: list[tuple[str, list[int]]]
) -> None:
    CustomProperty.objects.create(key="plan", value_type="string")
    team = live("Team plan", tree(trait_equals("plan", "team")))
    pro = live("Pro plan", tree(trait_equals("plan", "pro")))
    ingest(source, message("identify", plan="team"))
    assert (members(team), members(pro)) == ({"usr_ada"}, set())
    ingest(source, message("identify", plan="pro"))
    assert (members(team), members(pro)) == (set(), {"usr_ada"})
    ada = Customer.objects.get(user_id="usr_ada")
    assert exit_calls == [("Team plan", [ada.pk])]
    timeline = list(
        Event.objects.filter(customer=ada, name__startswith="Audience")
        .order_by("id")
        .values_list("name", "properties__audience_name")
    )
    assert timeline == [
        ("Audience Entered", "Team plan"),
        ("Audience Exited", "Team plan"),
        ("Audience Entered", "Pro plan"),
    ]


def test_a_non_live_segment_waits_for_its_periodic_evaluation(source: Source) -> None:
    segment = segment_save(name="Reporters", conditions=tree(performed("Report Run")))
    ingest(source, message(name="Report Run"))
    assert members(segment) == set()
    assert segment_evaluate(segment=segment).entered == 1
    assert not Event.objects.filter(name="Audience Entered").exists()


def test_processing_a_batch_twice_changes_nothing_more(source: Source) -> None:
    audience = live("Reporters", tree(performed("Report Run")))
    event_ids = ingest(source, message(name="Report Run"))
    outcome = stored_events_process(event_ids=event_ids)
    assert outcome.membership_changes == []
    assert SegmentMembershipChange.objects.filter(segment=audience).count() == 1


def test_a_full_evaluation_after_the_real_time_path_records_nothing_twice(source: Source) -> None:
    audience = live("Reporters", tree(performed("Report Run")))
    ingest(source, message(name="Report Run"), message(name="Report Run", user="usr_bob"))
    result = segment_evaluate(segment=audience)
    assert (result.entered, result.exited, result.members) == (0, 0, 2)
    assert SegmentMembershipChange.objects.filter(segment=audience).count() == 2


def test_only_audiences_the_batch_could_change_are_evaluated(
    source: Source, django_assert_max_num_queries: Any
) -> None:
    # Given ten live audiences on other events and one on the batch's event
    for index in range(10):
        live(f"Other {index}", tree(performed(f"Other {index}")))
    target = live("Reporters", tree(performed("Report Run")))
    ingest(source, message(name="Warm Up"))
    event_ids = ingest(source, message(name="Page Viewed"))
    # When a batch names none of their events, no audience query runs at all
    with django_assert_max_num_queries(12) as unrelated:
        stored_events_process(event_ids=event_ids)
    assert not any("segments_segmentmembership" in q["sql"] for q in unrelated.captured_queries)
    # And a batch naming one audience's event changes just that one
    ingest(source, message(name="Report Run", user="usr_cy"))
    assert members(target) == {"usr_cy"}
    assert SegmentMembershipChange.objects.get().segment_id == target.pk


def test_query_count_does_not_grow_with_the_number_of_relevant_audiences(
    source: Source, django_assert_max_num_queries: Any
) -> None:
    def queries_with(audiences: int) -> int:
        Segment.objects.all().delete()
        for index in range(audiences):
            live(f"Reporters {index}", tree(performed("Report Run", count=index + 2)))
        event_ids = ingest(source, message(name="Report Run", user=f"usr_{audiences}"))
        with django_assert_max_num_queries(100) as counted:
            stored_events_process(event_ids=event_ids)
        return len(counted.captured_queries)

    assert queries_with(2) == queries_with(12)


def test_the_time_sweep_moves_customers_out_when_a_date_window_passes(source: Source, exit_calls: list[Any]) -> None:
    CustomProperty.objects.create(key="renewal", value_type="date")
    audience = live(
        "Renewing soon",
        tree({"type": "condition", "property": "trait.renewal", "operator": "within_next_days", "value": 7}),
    )
    ingest(source, message("identify", renewal=(timezone.now() + timedelta(days=3)).isoformat()))
    assert members(audience) == {"usr_ada"}
    assert dependencies(parse_tree(audience.conditions)).time_based
    totals = time_sweep(now=timezone.now() + timedelta(days=4))
    assert (totals["audiences"], totals["exited"]) == (1, 1)
    assert members(audience) == set()
    assert [name for name, _ in exit_calls] == ["Renewing soon"]


def test_a_computed_trait_change_moves_the_customer_into_an_audience_using_it(source: Source) -> None:
    trait = computed_trait_save(key="reports", name="Reports", kind=ComputedTrait.Kind.COUNT, event="Report Run")
    ComputedTrait.objects.filter(pk=trait.pk).update(
        backfill_status=ComputedTrait.Backfill.DONE, backfill_finished_at=timezone.now() - timedelta(days=1)
    )
    audience = live(
        "Power reporters", tree({"type": "condition", "property": "computed.reports", "operator": "gte", "value": 2})
    )
    ingest(source, message(name="Report Run"))
    assert members(audience) == set()
    ingest(source, message(name="Report Run"))
    assert members(audience) == {"usr_ada"}


def test_dependencies_name_what_a_tree_reads() -> None:
    CustomProperty.objects.create(key="plan", value_type="string")
    needs = dependencies(
        parse_tree(
            tree(
                performed("Report Run"),
                trait_equals("plan", "team"),
                {"type": "condition", "property": "subscription.status", "operator": "equals", "value": "trialing"},
                operator="or",
            )
        )
    )
    assert (needs.events, needs.profile, needs.billing, needs.time_based) == (
        frozenset({"Report Run"}),
        True,
        True,
        False,
    )


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_moves_the_customer_within_seconds(source: Source, worker_queue: str) -> None:
    # Given a live audience and a stored event (the eager tests above cover the on-commit queueing)
    audience = live("Reporters", tree(performed("Report Run")))
    ada = Customer.objects.create(user_id="usr_ada")
    now = timezone.now()
    event = Event.objects.create(
        source=source, message_id="m-1", customer=ada, type="track", name="Report Run", timestamp=now, received_at=now
    )
    # When its task goes to a real worker process through the broker
    app.conf.task_always_eager = False
    try:
        apply_events_to_profiles.apply_async(([event.pk],), queue=worker_queue)
    finally:
        app.conf.task_always_eager = True
    # Then the worker puts the customer in the audience (the worker's start-up counts in the wait)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not members(audience):
        time.sleep(0.1)
    assert members(audience) == {"usr_ada"}
    assert Event.objects.filter(name="Audience Entered", customer=ada).count() == 1


def test_each_audience_re_evaluates_only_the_customers_whose_batch_events_concern_it(source: Source) -> None:
    # Given Bob did the audience's event before it went live (the periodic evaluation would pick him up)
    ingest(source, message(name="Report Run", user="usr_bob"))
    audience = live("Reporters", tree(performed("Report Run")))
    # When a batch has Bob viewing a page and Ada running a report
    ingest(source, message(name="Page Viewed", user="usr_bob"), message(name="Report Run"))
    # Then only Ada was decided for this audience: Bob's page view cannot change his result
    assert members(audience) == {"usr_ada"}
    assert segment_evaluate(segment=audience).entered == 1
    assert members(audience) == {"usr_ada", "usr_bob"}


def test_an_event_of_a_moment_ago_counts_for_a_windowed_audience(source: Source) -> None:
    audience = live("Active this week", tree(performed("Report Run", within_days=7)))
    ingest(source, message(name="Report Run", at=timezone.now() - timedelta(seconds=1)))
    assert members(audience) == {"usr_ada"}


def test_switching_a_segment_live_announces_the_members_it_already_has_once(source: Source) -> None:
    segment = segment_save(name="Reporters", conditions=tree(performed("Report Run")))
    ingest(source, message(name="Report Run"))
    segment_evaluate(segment=segment)
    with TestCase.captureOnCommitCallbacks(execute=True):
        segment_live_set(segment=segment, is_live=True)
    ada = Customer.objects.get(user_id="usr_ada")
    entered = Event.objects.filter(customer=ada, name="Audience Entered")
    assert list(entered.values_list("properties__audience_key", flat=True)) == ["reporters"]
    assert evaluate_segment(segment.pk, announce_members=True)["announced"] == 0  # a retried task: all published
    assert entered.count() == 1
    assert SegmentMembershipChange.objects.filter(segment=segment).count() == 1  # no invented history


def test_a_batch_hook_sees_the_batch_and_can_make_audiences_re_evaluate(source: Source) -> None:
    CustomProperty.objects.create(key="stage", value_type="string")
    audience = live("Habit stage", tree(trait_equals("stage", "habit")))
    seen: list[dict[int, set[str]]] = []

    def stage_hook(facts: Any, now: datetime) -> set[int]:
        seen.append(dict(facts.events))
        ids = set(facts.events)
        Customer.objects.filter(pk__in=ids).update(traits={"stage": "habit"})
        return ids

    on_batch_stored(stage_hook)
    try:
        ingest(source, message(name="Report Run"))
    finally:
        remove_batch_hook(stage_hook)
    ada = Customer.objects.get(user_id="usr_ada")
    assert seen == [{ada.pk: {"Report Run"}}]
    assert members(audience) == {"usr_ada"}  # a track call alone would not have re-evaluated a trait audience
