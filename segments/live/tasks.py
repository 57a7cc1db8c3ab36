"""Celery entry point of live audiences' time sweep (its name is the one it had in audiences.tasks, which the beat
schedule and the queue routes use)."""

from __future__ import annotations

from celery import shared_task

from config.models import TaskRun
from config.services import task_lock, task_run_recorded
from segments.live.sweep import time_sweep


@shared_task(name="audiences.tasks.sweep_time")
def sweep_time() -> dict[str, int]:
    """Periodic: what time alone changes — decayed computed traits, time-based live audiences."""
    with task_lock("time sweep") as acquired, task_run_recorded("live audience time sweep") as run:
        if not acquired:
            run.outcome = TaskRun.Outcome.SKIPPED
            return {}
        run.detail = time_sweep()
        return dict(run.detail)
