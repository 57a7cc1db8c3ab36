"""Celery entry points of the offers app; each calls one service."""

from __future__ import annotations

from config.jobs import periodic_job
from offers.access import session_tokens_purge
from offers.sessions import sessions_expire
from offers.win_back_emails import win_back_emails_sweep


@periodic_job(
    task="offers.tasks.expire_sessions",
    name="cancellation session expiry",
    every=600,
    description="Marks cancellation sessions left incomplete for 24 hours as deflected.",
)
def expire_sessions() -> dict[str, int]:
    """Periodic: incomplete cancellation sessions older than 24 hours become deflected (one UPDATE), and session
    tokens expired for a day are deleted."""
    return {"deflected": sessions_expire(), "tokens_purged": session_tokens_purge()}


@periodic_job(
    task="offers.tasks.send_win_back_emails",
    name="win-back emails",
    every=900,
    lock="win-back emails",  # the previous sweep may still be sending
    description="Emails each trial that lapsed unpaid its signed win-back link (once per lapsed trial).",
)
def send_win_back_emails() -> dict[str, int]:
    """Periodic: email each newly lapsed trial its win-back link (one email per lapsed trial, throttled)."""
    return win_back_emails_sweep()
