"""Celery entry points for project-wide jobs; each calls one service."""

from __future__ import annotations

from config.housekeeping import housekeeping_run
from config.jobs import periodic_job
from config.timers import timers_sweep


@periodic_job(
    task="config.tasks.housekeeping",
    name="housekeeping",
    every=600,
    lock="housekeeping",
    description="Deletes expired sessions, stale job locks and job-run history older than 30 days.",
)
def housekeeping() -> dict[str, int]:
    """Periodic clean-up (see config.housekeeping), under a lock so two beat ticks never overlap."""
    return housekeeping_run()


@periodic_job(
    task="config.tasks.sweep_timers",
    name="durable timers",
    every=5,
    record=False,
    description="Fires durable timers whose on-time message was lost (a worker restart) or whose retry is due, "
    "and queues the on-time messages of timers due within 10 minutes.",
)
def sweep_timers() -> dict[str, int]:
    """Periodic safety net of the durable timers: fire what was missed, queue what comes due (config.timers)."""
    return timers_sweep()
