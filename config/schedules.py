"""Periodic jobs, declared in code.

Beat keeps a handful of static entries that each find their due work in the database — never one entry per
customer, segment or campaign. `manage.py sync_schedules` writes this list into django-celery-beat's tables.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PeriodicSchedule:
    """One beat entry: which task runs and how often (its queue comes from config.queues)."""

    name: str
    task: str
    every_seconds: int
    description: str


SCHEDULES: list[PeriodicSchedule] = [
    PeriodicSchedule(
        name="housekeeping",
        task="config.tasks.housekeeping",
        every_seconds=600,
        description="Deletes expired sessions, stale job locks and job-run history older than 30 days.",
    ),
    PeriodicSchedule(
        name="durable timers",
        task="config.tasks.sweep_timers",
        every_seconds=5,
        description="Fires durable timers whose on-time message was lost (a worker restart) or whose retry is due, "
        "and queues the on-time messages of timers due within 10 minutes.",
    ),
    PeriodicSchedule(
        name="segment evaluation",
        task="segments.tasks.evaluate_segments",
        every_seconds=300,
        description="Re-evaluates every segment and records who entered and exited.",
    ),
    PeriodicSchedule(
        name="live audience time sweep",
        task="audiences.tasks.sweep_time",
        every_seconds=60,
        description="Decays windowed computed traits and re-evaluates live audiences whose conditions depend on "
        "time (within the last N days, trial ends in N days).",
    ),
    PeriodicSchedule(
        name="unqueued batch requeue",
        task="audiences.tasks.requeue_unqueued_batches",
        every_seconds=60,
        description="Queues the profile work of event batches stored while the broker was unreachable.",
    ),
    PeriodicSchedule(
        name="stripe event retries",
        task="integrations.tasks.retry_stripe_events",
        every_seconds=300,
        description="Re-queues failed Stripe events whose backoff has passed.",
    ),
    PeriodicSchedule(
        name="destination deliveries",
        task="integrations.tasks.dispatch_destination_deliveries",
        every_seconds=60,
        description="Flushes every destination with due deliveries: retries whose backoff has passed.",
    ),
    PeriodicSchedule(
        name="cancellation session expiry",
        task="offers.tasks.expire_sessions",
        every_seconds=600,
        description="Marks cancellation sessions left incomplete for 24 hours as deflected.",
    ),
    PeriodicSchedule(
        name="win-back emails",
        task="offers.tasks.send_win_back_emails",
        every_seconds=900,
        description="Emails each trial that lapsed unpaid its signed win-back link (once per lapsed trial).",
    ),
    PeriodicSchedule(
        name="trial loop sweep",
        task="trials.tasks.sweep_trials",
        every_seconds=300,
        description="Moves due trials on by time alone: habit window closed, trial ended (recover), win-back "
        "window over (lost), behaviour score decayed; creates trials for trialing subscriptions not yet seen.",
    ),
    PeriodicSchedule(
        name="lifecycle message sweep",
        task="trials.tasks.sweep_messages",
        every_seconds=300,
        description="Sends lifecycle emails whose trigger (event, audience, trial day N, trial ends in N hours) "
        "and conditions hold, one per customer per window, by priority; logs every suppression.",
    ),
    PeriodicSchedule(
        name="plays evaluate",
        task="trials.tasks.evaluate_plays",
        every_seconds=300,
        description="Turns sales-assist plays whose conditions hold (fit, PQL, trial timing) into rep alerts, one "
        "active alert per customer or account per play, after the cooldown; wakes snoozed alerts.",
    ),
    PeriodicSchedule(
        name="stripe reconcile",
        task="integrations.tasks.reconcile_stripe_events",
        every_seconds=24 * 3600,
        description="Fetches the last 3 days of Stripe events and processes those no webhook delivered.",
    ),
]

# Beat entries this project owns carry this prefix, so syncing never touches entries an admin added by hand.
SCHEDULE_PREFIX = "trialloop: "
