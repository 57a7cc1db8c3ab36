"""Celery entry points of lifecycle messaging that stand alone: the periodic sweep.

The delivery and real-time trigger tasks live next to the service that queues them (trials.messaging.delivery,
trials.messaging.realtime), so queuing one never imports a module above it; trials/tasks.py names them all
for autodiscovery.
"""

from __future__ import annotations

from celery import shared_task

from config.models import TaskRun
from config.services import task_lock, task_run_recorded
from trials.messaging.decide import messages_sweep


@shared_task(name="trials.tasks.sweep_messages")
def sweep_messages() -> dict[str, int]:
    """Periodic: lifecycle emails whose trigger and conditions hold now (throttled per customer)."""
    with task_lock("message sweep") as acquired, task_run_recorded("lifecycle message sweep") as run:
        if not acquired:
            run.outcome = TaskRun.Outcome.SKIPPED
            return {}
        run.detail = messages_sweep()
        return dict(run.detail)
