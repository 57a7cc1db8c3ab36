"""The live pipeline keeps up: a worker that fell behind applies the batches waiting together, one bad batch holds
back no other, and a batch's work is a fixed number of statements however many audiences it touches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from audiences.ingestion import messages_ingest
from audiences.models import Customer, PendingEventBatch, Source
from audiences.pipeline import BatchFacts, on_batch_stored, remove_batch_hook
from audiences.tasks import apply_events_to_profiles
from segments.tests.test_live_audiences import live, members, message, performed, tree

pytestmark = pytest.mark.django_db


def store(source: Source, user: str, event: str = "Feature Used") -> list[int]:
    """Store a batch as the tracking API does, its task not run yet (the worker is behind)."""
    with TestCase.captureOnCommitCallbacks(execute=False):
        return messages_ingest(source=source, messages=[message(user=user, name=event)]).event_ids


def test_a_worker_behind_applies_the_batches_waiting_together(source: Source) -> None:
    audience = live("Uses the feature", tree(performed("Feature Used", within_days=7)))
    alone = store(source, "usr_first")
    with CaptureQueriesContext(connection) as one:
        apply_events_to_profiles(alone, pending=True)
    waiting = [store(source, f"usr_{n}") for n in range(3)]
    assert PendingEventBatch.objects.count() == 3

    with CaptureQueriesContext(connection) as together:
        apply_events_to_profiles(waiting[0], pending=True)

    assert members(audience) == {"usr_first", "usr_0", "usr_1", "usr_2"}
    assert not PendingEventBatch.objects.exists()
    # Three batches for the statements of one: the cost per batch falls as the backlog grows.
    assert len(together.captured_queries) <= len(one.captured_queries)
    with CaptureQueriesContext(connection) as late:
        assert apply_events_to_profiles(waiting[1], pending=True) == 0  # its batch went with the others
    assert len(late.captured_queries) <= 3


@pytest.fixture
def failing_for() -> Iterator[set[int]]:
    """Customers whose batch raises in the worker (a bug one input triggers)."""
    doomed: set[int] = set()

    def hook(facts: BatchFacts, now: datetime) -> set[int]:
        if doomed & set(facts.events):
            raise ValueError("this batch cannot be applied")
        return set()

    on_batch_stored(hook)
    try:
        yield doomed
    finally:
        remove_batch_hook(hook)


def test_one_batch_that_fails_holds_back_none_of_the_others_applied_with_it(
    source: Source, failing_for: set[int]
) -> None:
    audience = live("Uses the feature", tree(performed("Feature Used", within_days=7)))
    store(source, "usr_before")
    bad = store(source, "usr_bad")
    store(source, "usr_after")
    failing_for.add(Customer.objects.get(user_id="usr_bad").pk)

    with pytest.raises(ValueError, match="cannot be applied"):
        apply_events_to_profiles(bad, pending=True)

    assert members(audience) == {"usr_before", "usr_after"}
    assert not PendingEventBatch.objects.exists()  # the bad batch is dropped, as a failed task's is


def test_a_batch_finds_every_audiences_window_edges_in_one_statement(source: Source) -> None:
    audiences = [live(f"Uses feature {k}", tree(performed(f"Feature {k} Used", within_days=7))) for k in range(6)]
    with TestCase.captureOnCommitCallbacks(execute=False):
        ids = messages_ingest(
            source=source, messages=[message(user="usr_ada", name=f"Feature {k} Used") for k in range(6)]
        ).event_ids

    with CaptureQueriesContext(connection) as queries:
        apply_events_to_profiles(ids, pending=True)

    assert all(members(audience) == {"usr_ada"} for audience in audiences)
    edges = [q["sql"] for q in queries.captured_queries if 'MIN("audiences_event"."timestamp")' in q["sql"]]
    assert len(edges) == 1  # one grouped query per audience before
