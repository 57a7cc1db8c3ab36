"""Periodic jobs: one decorator for the bookkeeping every beat job shares.

A periodic job is a Celery task that beat sends every N seconds. Around its body it needs the same few things:
a beat entry (config.schedules), often a lock so a slow run is never overlapped by the next tick
(config.locks), and a `TaskRun` row saying when it ran, what it did and whether it failed (the dashboard's
proof that beat and the worker are alive). `@periodic_job(...)` does all three, so a job's module holds only
what the job does:

    @periodic_job(task="trials.tasks.sweep_trials", name="trial loop sweep", every=300, lock="trial sweep",
                  description="Moves due trials on by time alone …")
    def sweep_trials() -> dict[str, int]:
        return trials_sweep()

The body returns what the task returns; a mapping is also the run's `detail`. A body whose run record should say
more than it returns returns a `JobReport`; one that decides not to run raises `JobSkipped` (recorded as
skipped, with the reason). When the lock is held elsewhere the run is recorded as skipped and the task returns
`idle()` (an empty dict unless told otherwise). Jobs that run every few seconds and find nothing most of the
time (`record=False`) keep their lock and schedule but write no run row, so the run history stays readable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import wraps
from typing import Any

from celery import Task, shared_task
from django.utils import timezone

from config.locks import DEFAULT_TTL, task_lock
from config.models import TaskRun
from config.schedules import PeriodicSchedule, schedule_register


@dataclass(frozen=True)
class JobReport:
    """What a job body returns when its run record (`detail`) says more than the task returns (`result`)."""

    result: Any
    detail: dict[str, Any] = field(default_factory=dict)


class JobSkipped(Exception):
    """Raised by a job body that decided not to run (a setting is missing): the run is recorded as skipped with
    the reason, and the task returns `result`."""

    def __init__(self, reason: str, result: Any = None) -> None:
        super().__init__(reason)
        self.reason, self.result = reason, result


@contextmanager
def task_run_recorded(name: str) -> Iterator[TaskRun]:
    """Record a job's run (start, end, outcome, details) around the block.

    The block fills `run.detail`; an exception marks the run failed and is re-raised for Celery's retry.
    """
    run = TaskRun.objects.create(name=name, started_at=timezone.now())
    try:
        yield run
    except Exception as error:
        run.outcome = TaskRun.Outcome.FAILED
        run.detail = {**run.detail, "error": f"{type(error).__name__}: {error}"}
        raise
    else:
        if run.outcome == TaskRun.Outcome.RUNNING:
            run.outcome = TaskRun.Outcome.SUCCEEDED
    finally:
        run.finished_at = timezone.now()
        run.save(update_fields=["outcome", "detail", "finished_at"])


@contextmanager
def _no_run() -> Iterator[TaskRun]:
    """A run record that is never saved (jobs declared with `record=False`)."""
    yield TaskRun(name="", started_at=timezone.now())


@contextmanager
def _no_lock() -> Iterator[bool]:
    yield True


def periodic_job(
    *,
    task: str,
    name: str,
    every: int | timedelta,
    description: str,
    lock: str | None = None,
    lock_ttl: timedelta = DEFAULT_TTL,
    record: bool = True,
    idle: Callable[[], Any] = dict,
    **task_options: Any,
) -> Callable[[Callable[[], Any]], Task[[], Any]]:
    """Declare a periodic job: the Celery task named `task` (its dotted name, kept when code moves), its beat
    entry `name` every `every` seconds, the lock `lock` (none: the job locks finer-grained itself) and a
    `TaskRun` named `name` around each run (unless `record` is False). `task_options` go to Celery."""
    seconds = int(every.total_seconds()) if isinstance(every, timedelta) else every

    def declare(body: Callable[[], Any]) -> Task[[], Any]:
        @wraps(body)
        def run_job() -> Any:
            locked = task_lock(lock, ttl=lock_ttl) if lock else _no_lock()
            recorded = task_run_recorded(name) if record else _no_run()
            with locked as acquired, recorded as run:
                if not acquired:  # the previous run is still going
                    run.outcome = TaskRun.Outcome.SKIPPED
                    return idle()
                try:
                    result = body()
                except JobSkipped as skipped:
                    run.outcome, run.detail = TaskRun.Outcome.SKIPPED, {"reason": skipped.reason}
                    return skipped.result if skipped.result is not None else idle()
                if isinstance(result, JobReport):
                    run.detail = dict(result.detail)
                    return result.result
                if isinstance(result, Mapping):
                    run.detail = dict(result)
                return result

        schedule_register(PeriodicSchedule(name=name, task=task, every_seconds=seconds, description=description))
        declared: Task[[], Any] = shared_task(name=task, **task_options)(run_job)  # type: ignore[no-untyped-call]
        return declared

    return declare
