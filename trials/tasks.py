"""Celery entry points of the trials app; each calls one service."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from config.models import TaskRun
from config.services import task_lock, task_run_recorded
from trials.emails import DeliveryError, message_deliver, messages_sweep, messages_trigger
from trials.loop import trials_sweep
from trials.plays import plays_evaluate


@shared_task(name="trials.tasks.sweep_trials")
def sweep_trials() -> dict[str, int]:
    """Periodic: trial stages and scores that time alone changes (due trials only)."""
    with task_lock("trial sweep") as acquired, task_run_recorded("trial loop sweep") as run:
        if not acquired:
            run.outcome = TaskRun.Outcome.SKIPPED
            return {}
        run.detail = trials_sweep()
        return dict(run.detail)


@shared_task(name="trials.tasks.deliver_message", bind=True, max_retries=5, default_retry_delay=60)
def deliver_message(self: Any, send_id: int) -> str:
    """Deliver one queued lifecycle email; retried with backoff, marked failed after the last attempt."""
    final = self.request.retries >= self.max_retries
    try:
        return message_deliver(send_id=send_id, final_attempt=final).status
    except DeliveryError as exc:
        raise self.retry(exc=exc, countdown=60 * 2**self.request.retries) from exc


@shared_task(name="trials.tasks.sweep_messages")
def sweep_messages() -> dict[str, int]:
    """Periodic: lifecycle emails whose trigger and conditions hold now (throttled per customer)."""
    with task_lock("message sweep") as acquired, task_run_recorded("lifecycle message sweep") as run:
        if not acquired:
            run.outcome = TaskRun.Outcome.SKIPPED
            return {}
        run.detail = messages_sweep()
        return dict(run.detail)


@shared_task(name="trials.tasks.trigger_messages")
def trigger_messages(customer_ids: list[int], template_ids: list[int]) -> dict[str, int]:
    """Real time: the email templates an event or an audience entry just triggered, for those customers."""
    return messages_trigger(customer_ids=customer_ids, template_ids=template_ids)


@shared_task(name="trials.tasks.evaluate_plays")
def evaluate_plays() -> dict[str, int]:
    """Periodic: sales-assist plays whose conditions hold now become rep alerts; snoozed alerts come back."""
    with task_lock("plays evaluate") as acquired, task_run_recorded("plays evaluate") as run:
        if not acquired:
            run.outcome = TaskRun.Outcome.SKIPPED
            return {}
        run.detail = plays_evaluate()
        return dict(run.detail)
