"""Celery entry points of the audiences app; each calls one service."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from audiences.computed_traits import computed_trait_backfill
from audiences.ingestion import unqueued_batches_requeue
from audiences.models import ComputedTrait
from audiences.pipeline import pending_batches_apply, stored_events_process, time_sweep
from config.jobs import periodic_job
from config.locks import task_lock
from config.retry import RetryPolicy

# A database that restarts or fails over must not drop a stored batch's effects: the task retries with
# backoff (8 retries within about 8 minutes, full jitter) instead of being acknowledged as failed.
PROFILE_TASK_RETRY = RetryPolicy(first=2, growth=2, cap=300, full_jitter=True, attempts=9)


@shared_task(
    name="audiences.tasks.apply_events_to_profiles",
    acks_late=True,
    **PROFILE_TASK_RETRY.task_options(OperationalError, InterfaceError),
)
def apply_events_to_profiles(event_ids: list[int], pending: bool = False) -> int:
    """A stored batch's effects: profiles (traits, accounts, first/last seen), computed traits and live
    audiences, with their outbound messages; safe to run twice. With `pending` (what ingestion queues), the
    batches waiting are applied, this one among them, together (pending_batches_apply); without, these events.
    Returns how many customers it touched."""
    if pending:
        return pending_batches_apply().customers
    return stored_events_process(event_ids=event_ids).customers


@periodic_job(
    task="audiences.tasks.requeue_unqueued_batches",
    name="unqueued batch requeue",
    every=60,
    lock="requeue unqueued batches",
    record=False,
    idle=int,
    description="Queues the profile work of event batches stored while the broker was unreachable.",
)
def requeue_unqueued_batches() -> int:
    """Periodic: queue the profile work of batches stored while the broker was down."""
    return unqueued_batches_requeue()


@shared_task(name="audiences.tasks.backfill_computed_trait", acks_late=True)
def backfill_computed_trait(trait_id: int) -> int:
    """Compute a new or changed definition from history (one run per trait at a time)."""
    with task_lock(f"computed-trait-backfill:{trait_id}") as acquired:
        trait = ComputedTrait.objects.filter(pk=trait_id).first()
        if not acquired or trait is None:
            return 0
        return computed_trait_backfill(trait=trait)


@periodic_job(
    task="audiences.tasks.sweep_time",
    name="live audience time sweep",
    every=60,
    lock="time sweep",
    description="Decays windowed computed traits and re-evaluates live audiences whose conditions depend on "
    "time (within the last N days, trial ends in N days).",
)
def sweep_time() -> dict[str, int]:
    """Periodic: what time alone changes — decayed computed traits, time-based live audiences."""
    return time_sweep()
