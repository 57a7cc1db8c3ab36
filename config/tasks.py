"""Celery entry points for project-wide jobs; each calls one service."""

from __future__ import annotations

from celery import shared_task

from config.services import housekeeping_run
from config.timers import timers_fire_due, timers_sweep


@shared_task(name="config.tasks.housekeeping")
def housekeeping() -> dict[str, int]:
    """Periodic clean-up (see config.services.housekeeping_run)."""
    return housekeeping_run()


@shared_task(name="config.tasks.fire_timers", acks_late=True)
def fire_timers() -> dict[str, int]:
    """Fire the durable timers due now (queued with an eta by config.timers when one is scheduled)."""
    return timers_fire_due().as_dict()


@shared_task(name="config.tasks.sweep_timers")
def sweep_timers() -> dict[str, int]:
    """Periodic safety net of the durable timers: fire what was missed, queue what comes due (config.timers)."""
    return timers_sweep()
