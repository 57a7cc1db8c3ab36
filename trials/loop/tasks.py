"""Celery entry point of the trial loop: the beat sweep of trials that time alone changes."""

from __future__ import annotations

from celery import shared_task

from config.models import TaskRun
from config.services import task_lock, task_run_recorded
from trials.loop.lifecycle import trials_sweep


@shared_task(name="trials.tasks.sweep_trials")
def sweep_trials() -> dict[str, int]:
    """Periodic: trial stages and scores that time alone changes (due trials only)."""
    with task_lock("trial sweep") as acquired, task_run_recorded("trial loop sweep") as run:
        if not acquired:
            run.outcome = TaskRun.Outcome.SKIPPED
            return {}
        run.detail = trials_sweep()
        return dict(run.detail)
