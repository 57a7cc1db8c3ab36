"""A stored batch's profile work: queueing it when the batch commits (or keeping it for the requeue when the
broker is down), and the Celery entry points that apply it. Ingestion queues through here, so the worker's
pipeline never needs ingestion's import. (Computed-trait backfill and the time sweep keep their audiences.tasks
names but live with their evaluation in segments.traits and segments.live.)"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from celery import shared_task
from django.db import InterfaceError, OperationalError
from django.utils import timezone
from kombu.exceptions import KombuError

from audiences.models import PendingEventBatch, UnqueuedEventBatch
from audiences.pipeline import pending_batches_apply, stored_events_process
from config.jobs import periodic_job
from config.retry import RetryPolicy

logger = logging.getLogger(__name__)

# A database that restarts or fails over must not drop a stored batch's effects: the task retries with
# backoff (8 retries within about 8 minutes, full jitter) instead of being acknowledged as failed.
PROFILE_TASK_RETRY = RetryPolicy(first=2, growth=2, cap=300, full_jitter=True, attempts=9)

# A pending batch this old whose task never applied it (a lost message) gets one from the periodic requeue.
PENDING_GRACE = timedelta(minutes=1)


def _publish_profile_work(event_ids: list[int], *, pending: bool) -> bool:
    """Queue a stored batch's profile task — with `pending`, one that applies the pending batches (this one among
    them, PendingEventBatch) — ; False when the broker cannot be reached (after Celery's own publish retries), so
    the caller can keep the batch for the requeue instead of failing."""
    try:
        # argsrepr keeps the task's log line short instead of listing every id (celery-types does not know it).
        apply_events_to_profiles.apply_async(  # type: ignore[call-arg]
            (event_ids,), {"pending": pending}, argsrepr=f"[{len(event_ids)} event ids]"
        )
    except (KombuError, OSError) as error:
        logger.warning(
            "broker unreachable, profile work of a batch of %s events kept for requeue: %s",
            len(event_ids),
            type(error).__name__,
        )
        return False
    return True


def profile_work_queue(event_ids: list[int]) -> None:
    """Runs once the batch committed: the events are durable and the client gets its 200 whatever the broker
    does. When the broker is down the batch is written down (UnqueuedEventBatch) for unqueued_batches_requeue."""
    if not _publish_profile_work(event_ids, pending=True):
        UnqueuedEventBatch.objects.bulk_create(
            [UnqueuedEventBatch(first_event_id=min(event_ids), event_ids=event_ids, created_at=timezone.now())],
            ignore_conflicts=True,
        )


def unqueued_batches_requeue(*, limit: int = 1000, now: datetime | None = None) -> int:
    """Queue the profile work of batches stored while the broker was down, oldest first; returns how many.

    Each row goes once its task is accepted by the broker (the task is safe to run twice, so a crash between
    the two only repeats harmless work; the batch's pending row may be applied again by a later task, as
    harmlessly); a publish that fails again stops the run and leaves the rest for the next one. Pending batches
    older than PENDING_GRACE whose task was lost otherwise get one task that applies them.
    """
    queued = 0
    for batch in UnqueuedEventBatch.objects.order_by("first_event_id")[:limit]:
        if not _publish_profile_work(batch.event_ids, pending=False):
            break
        UnqueuedEventBatch.objects.filter(pk=batch.pk).delete()
        queued += 1
    stale = PendingEventBatch.objects.filter(created_at__lt=(now or timezone.now()) - PENDING_GRACE)
    first = stale.order_by("first_event_id").values_list("event_ids", flat=True).first()
    if first is not None and _publish_profile_work(first, pending=True):
        queued += 1
    return queued


# A database that restarts or fails over must not drop a stored batch's effects: the task retries with
# backoff (8 tries within about 8 minutes) instead of being acknowledged as failed.
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
