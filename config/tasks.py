"""Celery entry points for project-wide jobs; each calls one service."""

from __future__ import annotations

from celery import shared_task

from config.services import housekeeping_run


@shared_task(name="config.tasks.housekeeping")
def housekeeping() -> dict[str, int]:
    """Periodic clean-up (see config.services.housekeeping_run)."""
    return housekeeping_run()
