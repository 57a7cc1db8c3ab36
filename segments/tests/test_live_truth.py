"""Live audiences keep one truth: each entry published once whichever path found it, the periodic evaluation
never undoing a live change, referenced segments followed at live latency, time-window exits from durable timers."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections
from django.test import TestCase
from django.utils import timezone

from audiences.models import Customer, Event, Source
from config.models import Timer
from config.timers import CLAIM_LEASE, _claim, timers_fire_due
from segments.audience_services import segment_live_set
from segments.evaluation import segment_evaluate
from segments.live.membership import TIME_WINDOW_TIMER
from segments.models import Segment, SegmentMembershipChange
from segments.services import segment_save
from segments.tests.test_live_audiences import ingest, live, members, message, performed, tree


def entered_events(segment: Segment) -> int:
    return Event.objects.filter(name="Audience Entered", properties__audience_id=segment.pk).count()


def exited_events(segment: Segment) -> int:
    return Event.objects.filter(name="Audience Exited", properties__audience_id=segment.pk).count()


@pytest.mark.django_db
class TestOnePublicationPerEntry:
    def test_switching_live_as_the_demo_does_publishes_each_entry_once(self, source: Source) -> None:
        ingest(source, *[message(user=f"usr_{i}", name="Report Run") for i in range(6)])
        segment = segment_save(name="Reporters", conditions=tree(performed("Report Run")))
        # The demo: switch live (its task runs later, off the broker), evaluate now, then the task runs.
        with TestCase.captureOnCommitCallbacks(execute=False) as queued:
            segment = segment_live_set(segment=segment, is_live=True)
        segment_evaluate(segment=segment)
        for callback in queued:
            callback()

        assert len(members(segment)) == 6
        assert SegmentMembershipChange.objects.filter(segment=segment, kind="entered").count() == 6
        assert entered_events(segment) == 6

    def test_members_recorded_before_the_switch_are_announced_once(self, source: Source) -> None:
        segment = segment_save(name="Reporters", conditions=tree(performed("Report Run")))
        ingest(source, *[message(user=f"usr_{i}", name="Report Run") for i in range(4)])
        segment_evaluate(segment=segment)  # not live: recorded, not published
        assert entered_events(segment) == 0
        with TestCase.captureOnCommitCallbacks(execute=True):
            segment = segment_live_set(segment=segment, is_live=True)
        segment_evaluate(segment=segment)
        assert entered_events(segment) == 4

    def test_an_exit_and_a_new_entry_are_each_published_once(self, source: Source) -> None:
        audience = live("Reporters", tree(performed("Report Run")))
        ingest(source, message(name="Report Run"))
        segment_save(name="Reporters", conditions=tree(performed("Never Happens")), segment=audience)
        segment_evaluate(segment=Segment.objects.get(pk=audience.pk))
        segment_save(name="Reporters", conditions=tree(performed("Report Run")), segment=audience)
        segment_evaluate(segment=Segment.objects.get(pk=audience.pk))
        segment_evaluate(segment=Segment.objects.get(pk=audience.pk))
        assert (entered_events(audience), exited_events(audience)) == (2, 1)
        keys = list(Event.objects.filter(name__startswith="Audience").values_list("message_id", flat=True))
        assert len(set(keys)) == 3


@pytest.mark.django_db
def test_a_full_evaluation_never_undoes_a_live_change_made_after_its_watermark(source: Source) -> None:
    audience = live("Active this month", tree(performed("Report Run", within_days=30)))
    watermark = timezone.now() - timedelta(seconds=1)  # the evaluation's snapshot was taken a second ago
    ingest(source, message(name="Report Run"))  # then this batch made ada a member
    assert members(audience) == {"usr_ada"}

    result = segment_evaluate(segment=audience, now=watermark)

    assert (result.entered, result.exited) == (0, 0)
    assert members(audience) == {"usr_ada"}
    assert (entered_events(audience), exited_events(audience)) == (1, 0)


@pytest.mark.django_db
def test_a_segment_referencing_another_follows_its_definition_and_its_members(source: Source) -> None:
    referenced = segment_save(name="Reporters", conditions=tree(performed("Report Run")))
    audience = live("In reporters", tree({"type": "segment", "segment": referenced.pk, "operator": "in"}))
    ingest(source, message(name="Report Run"))
    assert members(audience) == {"usr_ada"}  # its members changed: live

    with TestCase.captureOnCommitCallbacks(execute=True):
        segment_save(name="Reporters", conditions=tree(performed("Page Viewed")), segment=referenced)
    assert members(audience) == set()  # its definition changed: re-evaluated on commit

    ingest(source, message(name="Page Viewed"))  # the live path reads the new definition
    assert members(audience) == {"usr_ada"}
    assert (entered_events(audience), exited_events(audience)) == (2, 1)


@pytest.mark.django_db
class TestTimeWindowExits:
    def audience_with_member(self, source: Source) -> tuple[Segment, Any]:
        audience = live("Active this week", tree(performed("Report Run", within_days=7)))
        performed_at = timezone.now() - timedelta(days=6)
        ingest(source, message(name="Report Run", at=performed_at))
        assert members(audience) == {"usr_ada"}
        return audience, performed_at

    def test_the_member_exits_when_the_last_event_leaves_the_window(self, source: Source) -> None:
        audience, performed_at = self.audience_with_member(source)
        ada = Customer.objects.get(user_id="usr_ada")
        timer = Timer.objects.get(kind=TIME_WINDOW_TIMER)
        assert timer.key == f"audience-time:{audience.pk}:{ada.pk}"
        assert timer.due_at == performed_at + timedelta(days=7, microseconds=1)

        assert timers_fire_due(now=timer.due_at - timedelta(seconds=1)).fired == 0
        assert members(audience) == {"usr_ada"}
        assert timers_fire_due(now=timer.due_at).fired == 1
        assert members(audience) == set()
        assert timers_fire_due(now=timer.due_at + timedelta(minutes=1)).fired == 0
        assert (entered_events(audience), exited_events(audience)) == (1, 1)

    def test_a_newer_event_moves_the_exit_to_its_own_edge(self, source: Source) -> None:
        audience, _ = self.audience_with_member(source)
        timer = Timer.objects.get(kind=TIME_WINDOW_TIMER)
        later = timezone.now() - timedelta(days=2)
        ingest(source, message(name="Report Run", at=later))
        timers_fire_due(now=timer.due_at)  # the first edge: still a member, the next edge armed
        assert members(audience) == {"usr_ada"}
        assert Timer.objects.get(kind=TIME_WINDOW_TIMER).due_at == later + timedelta(days=7, microseconds=1)
        timers_fire_due(now=later + timedelta(days=7, seconds=1))
        assert members(audience) == set()
        assert (entered_events(audience), exited_events(audience)) == (1, 1)

    def test_a_worker_dying_mid_exit_neither_loses_nor_doubles_it(self, source: Source) -> None:
        audience, _ = self.audience_with_member(source)
        timer = Timer.objects.get(kind=TIME_WINDOW_TIMER)
        assert _claim(timer.due_at, "worker-that-died", 10)  # claimed, never completed

        assert timers_fire_due(now=timer.due_at + timedelta(seconds=1)).fired == 0
        assert timers_fire_due(now=timer.due_at + CLAIM_LEASE + timedelta(seconds=1)).fired == 1
        timers_fire_due(now=timer.due_at + 3 * CLAIM_LEASE)
        assert members(audience) == set()
        assert (entered_events(audience), exited_events(audience)) == (1, 1)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent connections need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_live_batches_and_full_evaluations_racing_record_each_transition_once(source: Source) -> None:
    audience = live("Active this month", tree(performed("Report Run", within_days=30)))
    users = [f"usr_{i}" for i in range(40)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def evaluate() -> None:
        try:
            while not stop.is_set():
                segment_evaluate(
                    segment=Segment.objects.get(pk=audience.pk), now=timezone.now() - timedelta(milliseconds=50)
                )
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    def stream() -> None:
        try:
            for user in users:
                ingest(source, message(user=user, name="Report Run"))
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    evaluators = [threading.Thread(target=evaluate) for _ in range(2)]
    streamer = threading.Thread(target=stream)
    for thread in [*evaluators, streamer]:
        thread.start()
    streamer.join(timeout=120)
    stop.set()
    for thread in evaluators:
        thread.join(timeout=60)
    assert errors == []
    segment_evaluate(segment=Segment.objects.get(pk=audience.pk))

    assert members(audience) == set(users)
    history = list(SegmentMembershipChange.objects.filter(segment=audience).values_list("kind", flat=True))
    assert (history.count("entered"), history.count("exited")) == (40, 0)
    assert (entered_events(audience), exited_events(audience)) == (40, 0)
