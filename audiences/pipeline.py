"""What happens after a batch of events is stored, in one worker transaction: profiles, computed traits, live
audiences, and the outbound messages they imply.

The customers the batch touched are locked first, in id order (FOR NO KEY UPDATE: a concurrent evaluation may
still insert membership rows pointing at them), so two batches about the same customer are applied one after the
other and the later steps never wait on each other's locks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import orjson
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from audiences.computed_traits import TraitChange, computed_traits_apply, computed_traits_decay, computed_traits_refresh
from audiences.ingestion import profiles_apply_events
from audiences.live import BatchFacts, MembershipChange, audiences_refresh, live_audiences
from audiences.models import ComputedTrait, Customer, Event, PendingEventBatch, Source
from config.facts import Fact, FactKind, facts_record

logger = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    """What processing one stored batch changed."""

    customers: int
    trait_changes: list[TraitChange]
    membership_changes: list[MembershipChange]


def trait_changes_publish(changes: list[TraitChange], now: datetime) -> None:
    """Tell the destinations about changed computed trait values."""
    facts_record(
        [
            Fact(
                kind=FactKind.TRAIT_CHANGED,
                customer_id=change.customer_id,
                idempotency_key=f"trait:{change.change_id}",
                occurred_at=now,
                data={
                    "trait": {"key": change.trait_key, "name": change.trait_name},
                    "old": change.old,
                    "new": change.new,
                },
            )
            for change in changes
        ]
    )


BatchHook = Callable[[BatchFacts, datetime], set[int]]
_batch_hooks: list[BatchHook] = []


def on_batch_stored(hook: BatchHook) -> BatchHook:
    """Register work that follows every stored batch (e.g. trial stages), run in the batch's worker transaction
    after profiles and computed traits and before live audiences: it gets what the batch touched and returns the
    customers whose segment-visible data it changed, so audiences reading that data are re-evaluated for them.
    Features register in AppConfig.ready()."""
    if hook not in _batch_hooks:
        _batch_hooks.append(hook)
    return hook


def remove_batch_hook(hook: BatchHook) -> None:
    if hook in _batch_hooks:
        _batch_hooks.remove(hook)


def _traits_by_customer(changes: list[TraitChange]) -> dict[int, set[str]]:
    changed: dict[int, set[str]] = {}
    for change in changes:
        changed.setdefault(change.customer_id, set()).add(change.trait_key)
    return changed


def stored_events_process(*, event_ids: list[int], now: datetime | None = None) -> BatchOutcome:
    """Apply a stored batch to profiles, computed traits and live audiences; safe to run twice."""
    now = now or timezone.now()
    rows = list(
        Event.objects.filter(pk__in=event_ids)
        .order_by()
        .values_list("customer_id", "name", "type", "group_id", "source_id")
    )
    if not rows:
        return BatchOutcome(0, [], [])
    with transaction.atomic():
        customer_ids = sorted({row[0] for row in rows})
        list(
            Customer.objects.select_for_update(no_key=True).filter(pk__in=customer_ids).order_by("pk").values_list("pk")
        )
        profiles_apply_events(event_ids=event_ids)
        trait_changes = computed_traits_apply(event_ids=event_ids, now=now)
        stripe_sources = set(
            Source.objects.filter(pk__in={row[4] for row in rows}, kind=Source.Kind.STRIPE).values_list("pk", flat=True)
        )
        if stripe_sources:
            trait_changes += computed_traits_refresh(
                customer_ids=sorted({row[0] for row in rows if row[4] in stripe_sources}),
                kinds=[ComputedTrait.Kind.TRIAL_DAYS_REMAINING],
                now=now,
            )
        trait_changes_publish(trait_changes, now)
        facts = BatchFacts(changed_traits=_traits_by_customer(trait_changes))
        for customer_id, name, kind, group_id, source_id in rows:
            facts.events.setdefault(customer_id, set()).add(name)
            if kind in (Event.Type.IDENTIFY, Event.Type.GROUP) or group_id:
                facts.profile_changed.add(customer_id)
            if source_id in stripe_sources:
                facts.billing_changed.add(customer_id)
        for hook in list(_batch_hooks):
            facts.profile_changed |= hook(facts, now)
        membership_changes = audiences_refresh(facts=facts, now=now)
    return BatchOutcome(len(customer_ids), trait_changes, membership_changes)


# The most batches applied together: about 2,500 events of 50-call batches, a few seconds of a backlog.
COALESCED_BATCHES = 50


def _pending_claim(limit: int, first_event_id: int | None = None) -> list[tuple[int, list[int]]]:
    """Take (delete, returning them) up to `limit` pending batches, oldest first — or that one batch — inside the
    caller's transaction: a rollback puts them back. Batches another worker has taken are skipped (SKIP LOCKED
    on PostgreSQL; SQLite runs one writer at a time)."""
    table = PendingEventBatch._meta.db_table
    skip_locked = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    which = "" if first_event_id is None else f" WHERE first_event_id = {int(first_event_id)}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE first_event_id IN (SELECT first_event_id FROM {table}{which} "
            f"ORDER BY first_event_id LIMIT %s{skip_locked}) RETURNING first_event_id, event_ids",
            [limit],
        )
        rows = cursor.fetchall()
    return sorted((int(first), ids if isinstance(ids, list) else orjson.loads(ids)) for first, ids in rows)


def pending_batches_apply(*, limit: int = COALESCED_BATCHES, now: datetime | None = None) -> BatchOutcome:
    """Apply the batches waiting (PendingEventBatch), up to `limit` of the oldest, together: one
    stored_events_process over all their events, in the transaction that takes them, so a worker that fell
    behind catches up with one pass of set-based statements per group instead of one per batch. A worker that
    keeps up finds its own batch alone; one whose batch another worker already took finds nothing.

    Batches applied together are one batch, as the calls of one request are: their events apply in timestamp
    order, and live audiences see the state after all of them — a state that lasted less than the backlog is
    not an entry. Database errors roll everything back for the task's retry. Any other failure is isolated:
    each batch is then applied alone, and only those that still fail are dropped (logged, the error raised for
    the task), as a failed task's batch is — one bad batch never holds back the others."""
    claimed: list[tuple[int, list[int]]] = []
    try:
        with transaction.atomic():
            claimed = _pending_claim(limit)
            return stored_events_process(event_ids=sorted({i for _, ids in claimed for i in ids}), now=now)
    except (OperationalError, InterfaceError):
        raise
    except Exception:
        if len(claimed) <= 1:
            PendingEventBatch.objects.filter(pk__in=[first for first, _ in claimed]).delete()
            raise
    failure: Exception | None = None
    customers = 0
    for first_event_id, _ in claimed:
        try:
            with transaction.atomic():
                for _, ids in _pending_claim(1, first_event_id):
                    customers += stored_events_process(event_ids=ids, now=now).customers
        except (OperationalError, InterfaceError):
            raise
        except Exception as error:
            logger.exception("the batch from event %s could not be applied; dropped", first_event_id)
            PendingEventBatch.objects.filter(pk=first_event_id).delete()
            failure = error
    if failure is not None:
        raise failure
    return BatchOutcome(customers, [], [])


def time_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """What time alone changes, other than event windows (their edges are durable timers, audiences.live):
    windowed computed traits whose oldest event left the window (and the live audiences reading them), and a full
    evaluation of every live audience whose conditions read time otherwise (dates within the last / next N days,
    days since or remaining, subscription durations)."""
    from segments.services import segment_evaluate

    now = now or timezone.now()
    totals = {"trait_changes": 0, "audiences": 0, "entered": 0, "exited": 0}
    with transaction.atomic():
        changes = computed_traits_decay(now=now)
        trait_changes_publish(changes, now)
        totals["trait_changes"] = len(changes)
        if changes:
            customer_ids = sorted({change.customer_id for change in changes})
            list(
                Customer.objects.select_for_update(no_key=True)
                .filter(pk__in=customer_ids)
                .order_by("pk")
                .values_list("pk")
            )
            facts = BatchFacts(changed_traits=_traits_by_customer(changes))
            for change in audiences_refresh(facts=facts, now=now):
                totals["entered" if change.kind == "entered" else "exited"] += 1
    for segment, _, needs, _ in live_audiences():
        if needs.time_based:
            result = segment_evaluate(segment=segment, now=now)
            totals["audiences"] += 1
            totals["entered"] += result.entered
            totals["exited"] += result.exited
    return totals
