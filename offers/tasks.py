"""Celery entry points of the offers app; each calls one service."""

from __future__ import annotations

from celery import shared_task

from config.models import TaskRun
from config.services import task_lock, task_run_recorded
from offers.access import session_tokens_purge
from offers.sessions import sessions_expire
from offers.win_back_emails import win_back_emails_sweep


@shared_task(name="offers.tasks.expire_sessions")
def expire_sessions() -> dict[str, int]:
    """Periodic: incomplete cancellation sessions older than 24 hours become deflected (one UPDATE), and session
    tokens expired for a day are deleted."""
    with task_run_recorded("cancellation session expiry") as run:
        counts = {"deflected": sessions_expire(), "tokens_purged": session_tokens_purge()}
        run.detail = counts
        return counts


@shared_task(name="offers.tasks.send_win_back_emails")
def send_win_back_emails() -> dict[str, int]:
    """Periodic: email each newly lapsed trial its win-back link (one email per lapsed trial, throttled)."""
    with task_lock("win-back emails") as acquired, task_run_recorded("win-back emails") as run:
        if not acquired:  # the previous sweep is still sending
            run.outcome = TaskRun.Outcome.SKIPPED
            return {}
        counts = win_back_emails_sweep()
        run.detail = counts
        return counts
