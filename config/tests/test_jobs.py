"""Periodic jobs: schedules synced from code, housekeeping's effects, no overlapping runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from audiences.models import AppliedEventBatch
from config.jobs import task_run_recorded
from config.locks import task_lock
from config.models import TaskLock, TaskRun, Timer
from config.schedules import SCHEDULE_PREFIX, SCHEDULES, schedules_sync
from config.tasks import housekeeping


@pytest.mark.django_db
class TestScheduleSync:
    def test_migrate_created_every_declared_schedule(self) -> None:
        names = set(PeriodicTask.objects.values_list("name", flat=True))
        assert {f"{SCHEDULE_PREFIX}{s.name}" for s in SCHEDULES} <= names

    def test_sync_is_idempotent(self) -> None:
        schedules_sync()
        before = list(PeriodicTask.objects.order_by("name").values("name", "task", "interval_id", "enabled"))
        report = schedules_sync()
        assert report["created"] == report["updated"] == report["removed"] == []
        assert list(PeriodicTask.objects.order_by("name").values("name", "task", "interval_id", "enabled")) == before

    def test_admin_edits_survive_and_reset_restores(self) -> None:
        entry = PeriodicTask.objects.get(name=f"{SCHEDULE_PREFIX}housekeeping")
        slower, _ = IntervalSchedule.objects.get_or_create(every=3600, period=IntervalSchedule.SECONDS)
        entry.interval, entry.enabled = slower, False
        entry.save()
        schedules_sync()
        entry.refresh_from_db()
        assert (entry.interval_id, entry.enabled) == (slower.pk, False)
        call_command("sync_schedules", "--reset")
        entry.refresh_from_db()
        assert entry.interval is not None
        assert (entry.interval.every, entry.enabled) == (600, True)

    def test_obsolete_entries_are_removed_but_hand_made_ones_kept(self) -> None:
        every, _ = IntervalSchedule.objects.get_or_create(every=60, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.create(name=f"{SCHEDULE_PREFIX}retired job", task="x.y", interval=every)
        PeriodicTask.objects.create(name="an admin's own job", task="x.z", interval=every)
        report = schedules_sync()
        assert report["removed"] == ["retired job"]
        assert PeriodicTask.objects.filter(name="an admin's own job").exists()


@pytest.mark.django_db
class TestHousekeeping:
    def test_deletes_only_what_expired_and_records_the_run(self) -> None:
        live = SessionStore()
        live.create()
        expired = SessionStore()
        expired.create()
        Session.objects.filter(session_key=expired.session_key).update(expire_date=timezone.now() - timedelta(days=1))
        old_run = TaskRun.objects.create(name="x", started_at=timezone.now() - timedelta(days=31))
        recent_run = TaskRun.objects.create(name="x", started_at=timezone.now() - timedelta(days=1))
        AppliedEventBatch.objects.create(first_event_id=1, applied_at=timezone.now() - timedelta(days=8))
        AppliedEventBatch.objects.create(first_event_id=2, applied_at=timezone.now() - timedelta(days=1))
        for username, age in (("old", timedelta(hours=1)), ("recent", timedelta(minutes=1))):
            attempt = AccessAttempt.objects.create(username=username, ip_address="10.0.0.1", failures_since_start=1)
            AccessAttempt.objects.filter(pk=attempt.pk).update(attempt_time=timezone.now() - age)

        now = timezone.now()
        Timer.objects.create(kind="k", key="old", due_at=now - timedelta(days=9), fired_at=now - timedelta(days=8))
        Timer.objects.create(kind="k", key="recent", due_at=now - timedelta(days=2), fired_at=now - timedelta(days=2))
        Timer.objects.create(kind="k", key="pending", due_at=now - timedelta(days=9))

        result = housekeeping.delay().get()

        assert result == {
            "expired_sessions": 1,
            "expired_locks": 0,
            "old_task_runs": 1,
            "old_applied_batches": 1,
            "old_sign_in_failures": 1,
            "old_fired_timers": 1,
        }
        assert sorted(Timer.objects.values_list("key", flat=True)) == ["pending", "recent"]
        assert list(AccessAttempt.objects.values_list("username", flat=True)) == ["recent"]
        assert list(AppliedEventBatch.objects.values_list("first_event_id", flat=True)) == [2]
        assert Session.objects.filter(session_key=live.session_key).exists()
        assert not TaskRun.objects.filter(pk=old_run.pk).exists()
        assert TaskRun.objects.filter(pk=recent_run.pk).exists()
        run = TaskRun.objects.get(name="housekeeping")
        assert run.outcome == TaskRun.Outcome.SUCCEEDED
        assert run.finished_at is not None
        assert run.detail == result

    def test_a_second_run_while_the_first_holds_the_lock_is_skipped(self) -> None:
        with task_lock("housekeeping") as acquired:
            assert acquired
            assert housekeeping.delay().get() == {}
        assert TaskRun.objects.get(name="housekeeping").outcome == TaskRun.Outcome.SKIPPED
        assert not TaskLock.objects.exists()

    def test_an_expired_lock_is_taken_over(self) -> None:
        TaskLock.objects.create(name="housekeeping", holder="crashed", expires_at=timezone.now() - timedelta(seconds=1))
        with task_lock("housekeeping") as acquired:
            assert acquired

    def test_failure_is_recorded_and_raised(self) -> None:
        with pytest.raises(RuntimeError), task_run_recorded("broken"):
            raise RuntimeError("disk full")
        run = TaskRun.objects.get(name="broken")
        assert run.outcome == TaskRun.Outcome.FAILED
        assert run.detail["error"] == "RuntimeError: disk full"
