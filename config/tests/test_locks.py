"""Job locks (config.locks): two holders never both run, a crashed holder's lock frees, on both databases.

PostgreSQL holds advisory locks per session: another session is played by a second raw connection, a crash by
terminating that connection's backend. SQLite (the embedded default) holds lease rows that expire.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from config.jobs import periodic_job
from config.locks import lock_key, task_lock
from config.models import TaskLock, TaskRun
from config.schedules import SCHEDULES

postgres_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="advisory locks are PostgreSQL's; SQLite uses the lease rows"
)


@contextmanager
def other_session() -> Iterator[Any]:
    """A second database session (another worker), outside Django's connection handling."""
    raw = connection.get_new_connection(connection.get_connection_params())
    raw.autocommit = True
    try:
        yield raw
    finally:
        raw.close()


def takes(raw: Any, name: str) -> bool:
    """Whether the other session can take the lock now (it keeps it if so)."""
    with raw.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock_key(name)])
        return bool(cursor.fetchone()[0])


def releases(raw: Any, name: str) -> None:
    with raw.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_key(name)])


@pytest.mark.django_db
class TestOneHolder:
    def test_a_second_acquisition_in_the_same_session_is_refused(self) -> None:
        with task_lock("job") as first:
            assert first
            with task_lock("job") as second:
                assert not second
            with task_lock("another job") as other:
                assert other
        with task_lock("job") as again:
            assert again

    def test_a_live_lease_of_another_holder_refuses_and_an_expired_one_is_taken_over(self) -> None:
        if connection.vendor == "postgresql":
            pytest.skip("PostgreSQL does not read the lease rows")
        TaskLock.objects.create(name="job", holder="other", expires_at=timezone.now() + timedelta(minutes=1))
        with task_lock("job") as held:
            assert not held
        TaskLock.objects.filter(name="job").update(expires_at=timezone.now() - timedelta(seconds=1))  # it crashed
        with task_lock("job") as held:
            assert held
        assert not TaskLock.objects.exists()

    def test_keys_are_stable_64_bit_numbers(self) -> None:
        assert lock_key("housekeeping") == lock_key("housekeeping") != lock_key("housekeeping ")
        assert -(2**63) <= lock_key("housekeeping") < 2**63


@postgres_only
@pytest.mark.django_db
class TestAdvisoryLocks:
    def test_a_lock_held_by_another_session_refuses_until_it_is_released(self) -> None:
        with other_session() as worker:
            assert takes(worker, "job")
            with task_lock("job") as held:
                assert not held
            releases(worker, "job")
            with task_lock("job") as held:
                assert held
        assert not TaskLock.objects.exists()  # no lease rows on PostgreSQL

    def test_a_crashed_holders_lock_frees_at_once(self) -> None:
        with other_session() as worker:
            assert takes(worker, "job")
            with worker.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pid = cursor.fetchone()[0]
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])  # the worker dies mid-run
            for _ in range(100):
                with task_lock("job") as held:
                    if held:
                        break
                time.sleep(0.05)
            assert held

    def test_a_periodic_job_whose_lock_another_worker_holds_is_skipped(self) -> None:
        calls: list[int] = []

        @periodic_job(task="tests.locked_job", name="locked job", every=60, lock="locked job", description="test")
        def locked_job() -> dict[str, int]:
            calls.append(1)
            return {"done": 1}

        try:
            with other_session() as worker:
                assert takes(worker, "locked job")
                assert locked_job() == {}
                releases(worker, "locked job")
            assert locked_job() == {"done": 1}
        finally:
            SCHEDULES[:] = [schedule for schedule in SCHEDULES if schedule.name != "locked job"]
        assert calls == [1]
        outcomes = list(TaskRun.objects.filter(name="locked job").order_by("pk").values_list("outcome", flat=True))
        assert outcomes == [TaskRun.Outcome.SKIPPED, TaskRun.Outcome.SUCCEEDED]


@postgres_only
@pytest.mark.django_db(transaction=True)
class TestAdvisoryLocksAcrossTransactions:
    def test_outside_a_transaction_the_session_lock_is_released_when_the_block_ends(self) -> None:
        with other_session() as worker:
            with task_lock("job") as held:
                assert held and not takes(worker, "job")
            assert takes(worker, "job")

    def test_a_block_that_raises_releases_its_lock(self) -> None:
        with other_session() as worker:
            with pytest.raises(RuntimeError), task_lock("job"):
                raise RuntimeError("boom")
            assert takes(worker, "job")

    def test_an_aborted_transaction_inside_the_block_does_not_keep_the_lock(self) -> None:
        with other_session() as worker:
            with task_lock("job") as held:
                assert held
                with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute("SELECT 1 / 0")
            assert takes(worker, "job")

    def test_inside_a_transaction_the_lock_lasts_until_it_ends_even_when_aborted(self) -> None:
        with other_session() as worker:
            with pytest.raises(DatabaseError), transaction.atomic(), task_lock("job") as held:
                assert held
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1 / 0")  # the transaction is aborted: no unlock could run now
            assert takes(worker, "job")  # the rollback released it
            releases(worker, "job")
            with transaction.atomic():
                with task_lock("job") as held:
                    assert held
                assert not takes(worker, "job")  # held until the commit
            assert takes(worker, "job")


@pytest.mark.django_db(transaction=True)
def test_two_threads_never_hold_one_lock_together() -> None:
    """Each thread has its own database connection (session), like two workers."""
    inside, leave = threading.Event(), threading.Event()
    outcome: list[bool] = []

    def holder() -> None:
        try:
            with task_lock("job") as held:
                outcome.append(held)
                inside.set()
                leave.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    assert inside.wait(10)
    with task_lock("job") as second:
        assert not second
    leave.set()
    thread.join(10)
    assert outcome == [True]
    with task_lock("job") as later:
        assert later
