"""Celery entry point of sales assist: the beat evaluation of plays into rep alerts."""

from __future__ import annotations

from celery import shared_task

from config.models import TaskRun
from config.services import task_lock, task_run_recorded
from trials.plays.plays import plays_evaluate


@shared_task(name="trials.tasks.evaluate_plays")
def evaluate_plays() -> dict[str, int]:
    """Periodic: sales-assist plays whose conditions hold now become rep alerts; snoozed alerts come back."""
    with task_lock("plays evaluate") as acquired, task_run_recorded("plays evaluate") as run:
        if not acquired:
            run.outcome = TaskRun.Outcome.SKIPPED
            return {}
        run.detail = plays_evaluate()
        return dict(run.detail)
