"""The audience-enter hook: called with the audience and the customers who just entered a live audience, inside
the transaction that records the entry — not on exit, not for segments that are not live, not for the
announcement of a segment's existing members when it becomes live."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from audiences.models import Customer, Source
from segments.live.publish import on_audience_enter, remove_enter_hook
from segments.models import Segment
from segments.services import segment_save
from segments.tasks import evaluate_segment
from segments.tests.test_live_audiences import ingest, live, message, performed, tree

pytestmark = pytest.mark.django_db


@pytest.fixture
def enter_calls() -> Iterator[list[tuple[str, list[int]]]]:
    calls: list[tuple[str, list[int]]] = []

    def hook(segment: Segment, customer_ids: list[int]) -> None:
        calls.append((segment.name, customer_ids))

    on_audience_enter(hook)
    yield calls
    remove_enter_hook(hook)


def test_entering_a_live_audience_calls_the_hook_once(source: Source, enter_calls: list[tuple[str, list[int]]]) -> None:
    live("Reporters", tree(performed("Report Run")))
    segment_save(name="Not live", conditions=tree(performed("Report Run")))
    ingest(source, message(name="Report Run"))
    ada = Customer.objects.get(user_id="usr_ada")
    assert enter_calls == [("Reporters", [ada.pk])]
    ingest(source, message(name="Report Run"))  # already a member: no entry
    assert enter_calls == [("Reporters", [ada.pk])]


def test_leaving_does_not_call_the_enter_hook(source: Source, enter_calls: list[tuple[str, list[int]]]) -> None:
    audience = live("Pages", tree(performed("Page Viewed")))
    ingest(source, message(name="Page Viewed"))
    assert len(enter_calls) == 1
    segment_save(name="Pages", conditions=tree(performed("Never Happens")), segment=audience)
    assert evaluate_segment(audience.pk)["exited"] == 1
    assert len(enter_calls) == 1


def test_announcing_existing_members_is_not_an_entry(source: Source, enter_calls: list[tuple[str, list[int]]]) -> None:
    segment = segment_save(name="Reporters", conditions=tree(performed("Report Run")))
    ingest(source, message(name="Report Run"))
    evaluate_segment(segment.pk)
    Segment.objects.filter(pk=segment.pk).update(is_live=True)
    assert evaluate_segment(segment.pk, announce_members=True)["announced"] == 1
    assert enter_calls == []
