"""Housekeeping: deleting what has outlived its use, every ten minutes (config.tasks.housekeeping).

The kernel deletes its own leftovers — expired sessions, expired job-lock leases, job runs older than 30 days,
failed sign-ins (django-axes' attempts) out of the cool-off window, durable timers a week after they fired. The
apps above add their own steps from their `AppConfig.ready()` with `register_housekeeping` (audiences: the
applied-batch ledger of computed traits), since the kernel never imports them. Each step is one set-based
DELETE and answers how many rows it removed, reported under its key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone

from config.models import TaskLock, TaskRun, Timer

HousekeepingStep = Callable[[datetime], int]
"""Deletes what is too old at `now`; returns how many rows it deleted."""


def _expired_sessions(now: datetime) -> int:
    return Session.objects.filter(expire_date__lt=now).delete()[0]


def _expired_locks(now: datetime) -> int:
    return TaskLock.objects.filter(expires_at__lt=now).delete()[0]


def _old_task_runs(now: datetime) -> int:
    return TaskRun.objects.filter(started_at__lt=now - timedelta(days=30)).delete()[0]


def _old_sign_in_failures(now: datetime) -> int:
    cool_off: timedelta = settings.AXES_COOLOFF_TIME
    return int(AccessAttempt.objects.filter(attempt_time__lt=now - cool_off).delete()[0])


def _old_fired_timers(now: datetime) -> int:
    return Timer.objects.filter(fired_at__lt=now - timedelta(days=7)).delete()[0]


_steps: dict[str, HousekeepingStep] = {
    "expired_sessions": _expired_sessions,
    "expired_locks": _expired_locks,
    "old_task_runs": _old_task_runs,
    "old_sign_in_failures": _old_sign_in_failures,
    "old_fired_timers": _old_fired_timers,
}


def register_housekeeping(key: str, step: HousekeepingStep) -> None:
    """Add an app's clean-up step, reported under `key` (from its `AppConfig.ready()`; once per key)."""
    existing = _steps.get(key)
    if existing is not None and existing is not step:
        raise ValueError(f"housekeeping step {key!r} is already registered: {existing!r}")
    _steps[key] = step


def housekeeping_run(now: datetime | None = None) -> dict[str, int]:
    """Run every step; returns the rows each deleted, by key (the periodic job records it as the run's detail)."""
    now = now or timezone.now()
    return {key: step(now) for key, step in _steps.items()}
