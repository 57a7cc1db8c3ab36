"""Which Celery queue each task runs on.

By default everything shares one queue, `default`: one worker pool does all the work, which is right for one
machine (`make run`). With `TRIALLOOP_TASK_QUEUES=split` tasks are routed by kind to four more queues, so a
deployment runs a worker pool per queue and one backlog cannot starve another — a flood of events cannot delay
lifecycle emails or webhooks, a slow webhook receiver cannot delay segment evaluation (docs/deployment.md).
"""

from __future__ import annotations

DEFAULT_QUEUE = "default"

# Task name -> queue in split mode. Tasks not listed stay on the default queue.
QUEUE_OF_TASK: dict[str, str] = {
    # ingest: what each stored batch of events sets off, and imports
    "audiences.tasks.apply_events_to_profiles": "ingest",
    "integrations.tasks.run_import": "ingest",
    "audiences.tasks.requeue_unqueued_batches": "ingest",
    # evaluate: segments, audiences, computed traits, the trial loop, plays, which lifecycle messages are due
    "segments.tasks.evaluate_segments": "evaluate",
    "segments.tasks.evaluate_segment": "evaluate",
    "audiences.tasks.sweep_time": "evaluate",
    "audiences.tasks.backfill_computed_trait": "evaluate",
    "trials.tasks.sweep_trials": "evaluate",
    "trials.tasks.evaluate_plays": "evaluate",
    "trials.tasks.sweep_messages": "evaluate",
    "trials.tasks.trigger_messages": "evaluate",
    "config.tasks.fire_timers": "evaluate",
    "config.tasks.sweep_timers": "evaluate",
    # email: talking to the SMTP server
    "trials.tasks.deliver_message": "email",
    "offers.tasks.send_win_back_emails": "email",
    # webhooks: talking to other services (destinations in, Stripe out)
    "integrations.tasks.flush_destination": "webhooks",
    "integrations.tasks.dispatch_destination_deliveries": "webhooks",
    "integrations.tasks.process_stripe_event": "webhooks",
    "integrations.tasks.retry_stripe_events": "webhooks",
    "integrations.tasks.reconcile_stripe_events": "webhooks",
}
SPLIT_QUEUES = [DEFAULT_QUEUE, *sorted(set(QUEUE_OF_TASK.values()))]


def task_routes(mode: str) -> dict[str, dict[str, str]]:
    """Celery's `task_routes` for the mode: none in `single` mode, every listed task to its queue in `split`."""
    if mode == "single":
        return {}
    if mode != "split":
        raise ValueError(f"TRIALLOOP_TASK_QUEUES must be 'single' or 'split', not {mode!r}.")
    return {task: {"queue": queue} for task, queue in QUEUE_OF_TASK.items()}
