"""What happens after a batch of events is stored, in one worker transaction: profiles, then the work the layers
above register here — computed traits, the trial loop, live audiences — and the outbound messages they imply.

The customers the batch touched are locked first, in id order (FOR NO KEY UPDATE: a concurrent evaluation may
still insert membership rows pointing at them), so two batches about the same customer are applied one after the
other and the later steps never wait on each other's locks.

Profiles are the lowest layer: they know what a batch changed (BatchFacts) but not who reads it. Computed traits
and live audiences are evaluated by the conditions layer (segments.traits, segments.live) and the trial loop by
trials; each registers its step from its AppConfig.ready() in one of three phases, run in this order:
`on_batch_traits` (values derived from the events: their changes feed the facts), `on_batch_stored` (features
whose rows segments read: they return the customers they changed) and `on_batch_settled` (what reads the
settled state of every customer: live audience membership).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from audiences.models import Customer, Event, PendingEventBatch, Source
from audiences.profiles import profiles_apply_events
from config.facts import Fact, FactKind, facts_record

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TraitChange:
    """One recorded change of a customer's computed trait value (a ComputedTraitChange row), for live audiences
    and destinations."""

    trait_id: int
    trait_key: str
    trait_name: str
    customer_id: int
    old: Any
    new: Any
    change_id: int


class Needs(Protocol):
    """What a reader of profiles (a live audience, a play) depends on — segments.live.Dependencies fills it."""

    @property
    def events(self) -> frozenset[str]: ...
    @property
    def profile(self) -> bool: ...
    @property
    def billing(self) -> bool: ...
    @property
    def computed(self) -> frozenset[str]: ...


@dataclass
class BatchFacts:
    """What a processed batch changed, per customer, for deciding which readers to re-evaluate for whom."""

    events: dict[int, set[str]] = field(default_factory=dict)  # customer → names of the batch's events
    profile_changed: set[int] = field(default_factory=set)  # identified or grouped in the batch
    billing_changed: set[int] = field(default_factory=set)  # told about by Stripe
    changed_traits: dict[int, set[str]] = field(default_factory=dict)  # customer → computed trait keys
    event_ids: list[int] = field(default_factory=list)  # the stored events themselves

    def candidates(self, needs: Needs) -> set[int]:
        """The customers whose result for a reader with these needs this batch could have changed."""
        found = {c for c, names in self.events.items() if needs.events & names}
        found |= {c for c, keys in self.changed_traits.items() if needs.computed & keys}
        if needs.profile:
            found |= self.profile_changed
        if needs.billing:
            found |= self.billing_changed
        return found

    def traits_changed(self, changes: Sequence[TraitChange]) -> None:
        """Add computed trait changes to what the batch changed."""
        for change in changes:
            self.changed_traits.setdefault(change.customer_id, set()).add(change.trait_key)


@dataclass
class BatchOutcome:
    """What processing one stored batch changed."""

    customers: int
    trait_changes: list[TraitChange]
    membership_changes: list[Any]  # what the settled-phase steps report (segments.live.MembershipChange)


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


TraitsHook = Callable[[BatchFacts, datetime], list[TraitChange]]
BatchHook = Callable[[BatchFacts, datetime], set[int]]
SettledHook = Callable[[BatchFacts, datetime], Sequence[Any]]
_traits_hooks: list[TraitsHook] = []
_batch_hooks: list[BatchHook] = []
_settled_hooks: list[SettledHook] = []


def on_batch_traits(hook: TraitsHook) -> TraitsHook:
    """Register a step deriving values from the batch's events (computed traits: segments.traits), run first; it
    returns the changes it recorded, which are published and added to the facts the later phases read."""
    if hook not in _traits_hooks:
        _traits_hooks.append(hook)
    return hook


def on_batch_stored(hook: BatchHook) -> BatchHook:
    """Register work that follows every stored batch (e.g. trial stages), run in the batch's worker transaction
    after profiles and computed traits and before live audiences: it gets what the batch touched and returns the
    customers whose segment-visible data it changed, so audiences reading that data are re-evaluated for them.
    Features register in AppConfig.ready()."""
    if hook not in _batch_hooks:
        _batch_hooks.append(hook)
    return hook


def on_batch_settled(hook: SettledHook) -> SettledHook:
    """Register a step reading the batch's settled state (live audience membership: segments.live), run last; it
    returns the changes it made, reported in the BatchOutcome."""
    if hook not in _settled_hooks:
        _settled_hooks.append(hook)
    return hook


def remove_batch_hook(hook: BatchHook) -> None:
    if hook in _batch_hooks:
        _batch_hooks.remove(hook)


def batch_facts_process(facts: BatchFacts, now: datetime) -> tuple[list[TraitChange], list[Any]]:
    """Run the registered phases over what a batch (or a sweep) changed, inside the caller's transaction with the
    customers locked: derived values, then the features, then membership. Returns the trait and membership
    changes."""
    trait_changes: list[TraitChange] = []
    for traits_hook in list(_traits_hooks):
        trait_changes += traits_hook(facts, now)
    trait_changes_publish(trait_changes, now)
    facts.traits_changed(trait_changes)
    for hook in list(_batch_hooks):
        facts.profile_changed |= hook(facts, now)
    membership_changes: list[Any] = []
    for settled_hook in list(_settled_hooks):
        membership_changes += settled_hook(facts, now)
    return trait_changes, membership_changes


def stored_events_process(*, event_ids: list[int], now: datetime | None = None) -> BatchOutcome:
    """Apply a stored batch to profiles and the registered phases (computed traits, the trial loop, live
    audiences); safe to run twice."""
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
        stripe_sources = set(
            Source.objects.filter(pk__in={row[4] for row in rows}, kind=Source.Kind.STRIPE).values_list("pk", flat=True)
        )
        facts = BatchFacts(event_ids=list(event_ids))
        for customer_id, name, kind, group_id, source_id in rows:
            facts.events.setdefault(customer_id, set()).add(name)
            if kind in (Event.Type.IDENTIFY, Event.Type.GROUP) or group_id:
                facts.profile_changed.add(customer_id)
            if source_id in stripe_sources:
                facts.billing_changed.add(customer_id)
        trait_changes, membership_changes = batch_facts_process(facts, now)
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
