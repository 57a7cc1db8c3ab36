"""Celery entry points of the offers app; each calls one service."""

from __future__ import annotations

from celery import shared_task

from config.services import task_run_recorded
from offers.services import sessions_expire


@shared_task(name="offers.tasks.expire_sessions")
def expire_sessions() -> dict[str, int]:
    """Periodic: incomplete cancellation sessions older than 24 hours become deflected (one UPDATE)."""
    with task_run_recorded("cancellation session expiry") as run:
        deflected = sessions_expire()
        run.detail = {"deflected": deflected}
        return {"deflected": deflected}
