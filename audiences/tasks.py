"""Celery entry points of the audiences app; each calls one service. (Computed-trait backfill and the time sweep
keep their audiences.tasks names but live with their evaluation in segments.traits and segments.live.)"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from audiences.ingestion import unqueued_batches_requeue
from audiences.pipeline import pending_batches_apply, stored_events_process
from config.services import task_lock


# A database that restarts or fails over must not drop a stored batch's effects: the task retries with
# backoff (8 tries within about 8 minutes) instead of being acknowledged as failed.
@shared_task(
    name="audiences.tasks.apply_events_to_profiles",
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=300,
    max_retries=8,
)
def apply_events_to_profiles(event_ids: list[int], pending: bool = False) -> int:
    """A stored batch's effects: profiles (traits, accounts, first/last seen), computed traits and live
    audiences, with their outbound messages; safe to run twice. With `pending` (what ingestion queues), the
    batches waiting are applied, this one among them, together (pending_batches_apply); without, these events.
    Returns how many customers it touched."""
    if pending:
        return pending_batches_apply().customers
    return stored_events_process(event_ids=event_ids).customers


@shared_task(name="audiences.tasks.requeue_unqueued_batches")
def requeue_unqueued_batches() -> int:
    """Periodic: queue the profile work of batches stored while the broker was down."""
    with task_lock("requeue unqueued batches") as acquired:
        return unqueued_batches_requeue() if acquired else 0
