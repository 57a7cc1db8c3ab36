"""Durable timers: scheduled in the database, fired once on time, never lost to a restart, retried on failure."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from config.models import Timer
from config.retry import retry_backoff
from config.tasks import sweep_timers
from config.timers import (
    CLAIM_LEASE,
    ETA_HORIZON,
    MAX_ATTEMPTS,
    DueTimer,
    _claim,
    register_timer_handler,
    timer_cancel,
    timer_schedule,
    timers_cancel_prefix,
    timers_fire_due,
    timers_schedule,
    timers_sweep,
    unregister_timer_handler,
)

KIND = "test.timer"


@pytest.fixture
def fired() -> Iterator[list[DueTimer]]:
    """Register a handler for KIND that records what it fires."""
    calls: list[DueTimer] = []
    lock = threading.Lock()

    def handler(timers: Sequence[DueTimer]) -> None:
        with lock:
            calls.extend(timers)

    register_timer_handler(KIND, handler)
    yield calls
    unregister_timer_handler(KIND)


@pytest.mark.django_db
class TestScheduling:
    def test_a_timer_fires_once_when_due_with_its_payload(self, fired: list[DueTimer]) -> None:
        now = timezone.now()
        timer_schedule(KIND, "a", now + timedelta(minutes=1), {"customer": 7})

        assert timers_fire_due(now=now).fired == 0
        report = timers_fire_due(now=now + timedelta(minutes=1))
        again = timers_fire_due(now=now + timedelta(minutes=2))

        assert (report.fired, again.fired) == (1, 0)
        assert [(t.key, t.payload, t.attempts) for t in fired] == [("a", {"customer": 7}, 1)]
        assert Timer.objects.get(key="a").fired_at is not None

    def test_rescheduling_moves_the_timer_and_rearms_a_fired_one(self, fired: list[DueTimer]) -> None:
        now = timezone.now()
        timer_schedule(KIND, "a", now + timedelta(minutes=5))
        timer_schedule(KIND, "a", now + timedelta(minutes=1))
        timers_fire_due(now=now + timedelta(minutes=1))
        timer_schedule(KIND, "a", now + timedelta(minutes=3), {"v": 2})
        timers_fire_due(now=now + timedelta(minutes=3))

        assert [(t.due_at, t.payload) for t in fired] == [
            (now + timedelta(minutes=1), {}),
            (now + timedelta(minutes=3), {"v": 2}),
        ]
        assert Timer.objects.count() == 1

    def test_scheduling_the_same_moment_again_is_idempotent(self, fired: list[DueTimer]) -> None:
        now = timezone.now()
        due = now + timedelta(minutes=1)
        assert timers_schedule(KIND, [("a", due, {}), ("b", due, {})], now=now) == 2
        timers_fire_due(now=due)
        assert timers_schedule(KIND, [("a", due, {}), ("b", due, {})], now=now) == 0
        timers_fire_due(now=due + timedelta(minutes=1))

        assert sorted(t.key for t in fired) == ["a", "b"]

    def test_cancelled_timers_never_fire(self, fired: list[DueTimer]) -> None:
        now = timezone.now()
        for key in ("x", "c:1:a", "c:1:b", "c:2:a"):
            timer_schedule(KIND, key, now)
        assert timer_cancel("x") == 1
        assert timers_cancel_prefix("c:1:") == 2
        timers_fire_due(now=now)

        assert [t.key for t in fired] == ["c:2:a"]

    def test_scheduling_queues_an_on_time_message_after_commit_only_within_the_horizon(
        self, django_capture_on_commit_callbacks: Callable[..., object]
    ) -> None:
        now = timezone.now()
        with django_capture_on_commit_callbacks() as callbacks:  # type: ignore[attr-defined]
            timer_schedule(KIND, "soon", now + timedelta(seconds=2))
            timer_schedule(KIND, "later", now + ETA_HORIZON + timedelta(minutes=1))
        assert len(callbacks) == 1
        queued = dict(Timer.objects.values_list("key", "queued_for"))
        assert queued == {"soon": now + timedelta(seconds=2), "later": None}


@pytest.mark.django_db
class TestRestartsAndFailures:
    def test_a_lost_on_time_message_is_made_up_by_the_sweep(
        self, fired: list[DueTimer], django_capture_on_commit_callbacks: Callable[..., object]
    ) -> None:
        now = timezone.now()
        with django_capture_on_commit_callbacks(execute=False):  # type: ignore[attr-defined]
            timer_schedule(KIND, "a", now - timedelta(seconds=1))  # the broker lost the message
        assert fired == []

        assert sweep_timers.delay().get() == {"fired": 1, "failed": 0, "queued": 0}
        assert [t.key for t in fired] == ["a"]

    def test_the_sweep_queues_messages_for_timers_coming_within_the_horizon(
        self, django_capture_on_commit_callbacks: Callable[..., object]
    ) -> None:
        now = timezone.now()
        timer_schedule(KIND, "far", now + ETA_HORIZON + timedelta(minutes=5))
        assert timers_sweep(now=now)["queued"] == 0
        later = now + timedelta(minutes=6)
        assert timers_sweep(now=later)["queued"] == 1
        assert timers_sweep(now=later)["queued"] == 0  # queued once per due time

    def test_a_worker_dying_after_its_claim_delays_the_timer_until_the_lease_ends(self, fired: list[DueTimer]) -> None:
        now = timezone.now()
        timer_schedule(KIND, "a", now)
        assert len(_claim(now, "dead-worker", 10)) == 1  # claimed, then the worker died

        assert timers_fire_due(now=now + timedelta(seconds=30)).fired == 0
        assert timers_fire_due(now=now + CLAIM_LEASE + timedelta(seconds=1)).fired == 1
        assert timers_fire_due(now=now + 2 * CLAIM_LEASE + timedelta(seconds=2)).fired == 0
        assert [t.attempts for t in fired] == [2]

    def test_one_failing_timer_does_not_hold_back_the_others_and_is_retried_with_backoff(
        self, fired: list[DueTimer]
    ) -> None:
        broken = {"b"}

        def handler(timers: Sequence[DueTimer]) -> None:
            for timer in timers:
                if timer.key in broken:
                    raise RuntimeError(f"cannot handle {timer.key}")
            fired.extend(timers)

        unregister_timer_handler(KIND)
        register_timer_handler(KIND, handler)
        now = timezone.now()
        timers_schedule(KIND, [(key, now, {}) for key in "abc"], now=now)

        report = timers_fire_due()
        assert (report.fired, report.failed) == (2, 1)
        assert sorted(t.key for t in fired) == ["a", "c"]
        failing = Timer.objects.get(key="b")
        assert failing.fired_at is None and failing.attempts == 1
        assert failing.last_error == "RuntimeError: cannot handle b"
        assert failing.claimed_until is not None
        assert failing.claimed_until - timezone.now() <= retry_backoff(1)

        assert timers_fire_due().fired == 0  # waiting for its retry
        broken.clear()
        assert timers_fire_due(now=failing.claimed_until + timedelta(seconds=1)).fired == 1
        assert sorted(t.key for t in fired) == ["a", "b", "c"]
        assert Timer.objects.get(key="b").last_error == ""

    def test_a_timer_failing_every_try_is_left_marked_failed(self) -> None:
        now = timezone.now()
        timer_schedule("test.nobody-handles-this", "a", now)
        at = now
        for _ in range(MAX_ATTEMPTS):
            timers_fire_due(now=at)
            at += timedelta(hours=7)
        timer = Timer.objects.get(key="a")
        assert timer.attempts == MAX_ATTEMPTS
        assert timer.failed_at is not None
        assert "no handler registered" in timer.last_error
        assert timers_fire_due(now=at + timedelta(days=1)).failed == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent connections need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_workers_fire_each_timer_exactly_once() -> None:
    calls: list[str] = []
    lock = threading.Lock()

    def slow_handler(timers: Sequence[DueTimer]) -> None:
        time.sleep(0.01)
        with lock:
            calls.extend(t.key for t in timers)

    register_timer_handler(KIND, slow_handler)
    now = timezone.now()
    timers_schedule(KIND, [(f"t{i}", now, {}) for i in range(600)], now=now)
    start = threading.Barrier(3)

    def worker() -> None:
        try:
            start.wait()
            for _ in range(5):
                timers_fire_due(limit=40)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        unregister_timer_handler(KIND)
    assert len(calls) == 600
    assert len(set(calls)) == 600
    assert Timer.objects.filter(fired_at__isnull=True).count() == 0
