"""Celery entry points of the trials app; each calls one service."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from config.jobs import periodic_job
from config.retry import RetryPolicy
from trials.emails import DeliveryError, message_deliver, messages_sweep, messages_trigger
from trials.loop import trials_sweep
from trials.plays import plays_evaluate


@periodic_job(
    task="trials.tasks.sweep_trials",
    name="trial loop sweep",
    every=300,
    lock="trial sweep",
    description="Moves due trials on by time alone: habit window closed, trial ended (recover), win-back "
    "window over (lost), behaviour score decayed; creates trials for trialing subscriptions not yet seen.",
)
def sweep_trials() -> dict[str, int]:
    """Periodic: trial stages and scores that time alone changes (due trials only)."""
    return trials_sweep()


# Six tries: 1, 2, 4, 8 and 16 minutes apart (config.retry; Celery's autoretry re-queues the task).
EMAIL_DELIVERY_RETRY = RetryPolicy(first=60, growth=2, cap=3600, attempts=6)


@shared_task(name="trials.tasks.deliver_message", bind=True, **EMAIL_DELIVERY_RETRY.task_options(DeliveryError))
def deliver_message(self: Any, send_id: int) -> str:
    """Deliver one queued lifecycle email; retried with backoff, marked failed after the last attempt."""
    final = self.request.retries >= self.max_retries
    return message_deliver(send_id=send_id, final_attempt=final).status


@periodic_job(
    task="trials.tasks.sweep_messages",
    name="lifecycle message sweep",
    every=300,
    lock="message sweep",
    description="Sends lifecycle emails whose trigger (event, audience, trial day N, trial ends in N hours) "
    "and conditions hold, one per customer per window, by priority; logs every suppression.",
)
def sweep_messages() -> dict[str, int]:
    """Periodic: lifecycle emails whose trigger and conditions hold now (throttled per customer)."""
    return messages_sweep()


@shared_task(name="trials.tasks.trigger_messages")
def trigger_messages(customer_ids: list[int], template_ids: list[int]) -> dict[str, int]:
    """Real time: the email templates an event or an audience entry just triggered, for those customers."""
    return messages_trigger(customer_ids=customer_ids, template_ids=template_ids)


@periodic_job(
    task="trials.tasks.evaluate_plays",
    name="plays evaluate",
    every=300,
    lock="plays evaluate",
    description="Turns sales-assist plays whose conditions hold (fit, PQL, trial timing) into rep alerts, one "
    "active alert per customer or account per play, after the cooldown; wakes snoozed alerts.",
)
def evaluate_plays() -> dict[str, int]:
    """Periodic: sales-assist plays whose conditions hold now become rep alerts; snoozed alerts come back."""
    return plays_evaluate()
