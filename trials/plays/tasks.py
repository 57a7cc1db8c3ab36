"""Celery entry point of sales assist: the beat evaluation of plays into rep alerts."""

from __future__ import annotations

from config.jobs import periodic_job
from trials.plays.plays import plays_evaluate


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
