"""Computed traits: per-customer values derived from events, kept current as events arrive.

A definition names an event — or any event the customer performed (their track, page and screen calls, not what
Stripe recorded about them), for the kinds that read no property — with optional property filters and a window
(the last N days, or since the start of the customer's current trial), and what to derive from it: a count, a
sum / average / min / max of a numeric property, unique days active, the first / last / most frequent value of a
property, the unique values (list or count), whether it ever happened, the days since it last happened, or (from
the trial, not events) the trial days remaining — of a Stripe trial or of a trial without a card alike.

All-time traits are updated **incrementally**: each stored batch's matching events are folded into the running
state of the customers it touched (counts per value, the first and last event, ...). Every fold is commutative —
first/last compare (timestamp, event id), ties of "most frequent" go to the alphabetically first value — so events
arriving out of order give the same result as a recomputation from history, which tests check kind by kind. A
batch is folded once: its first event id is recorded in the same transaction (AppliedEventBatch), so a task run
twice changes nothing the second time. Windowed traits of the touched customers are recomputed over their window
only (bounded by the customer/name/time index) and carry `expires_at`, the moment their oldest counted event
leaves the window, which the decay sweep looks for. A new or changed definition is backfilled from history in
chunks of customers, with progress on the definition.

Every value change is recorded (ComputedTraitChange) and returned, so live audiences and destinations can react.
The trial loop sits above this layer: "since the trial started" and "trial days remaining" read the current trial
through the reader trials registers (segments.traits.trial_reader); the Stripe mirror's trialing subscriptions are
read directly (intake, below).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Min, Q, QuerySet
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from audiences.models import (
    AppliedEventBatch,
    ComputedTrait,
    ComputedTraitChange,
    ComputedTraitValue,
    Customer,
    Event,
    ProfileMerge,
    Source,
)
from audiences.pipeline import BatchFacts, TraitChange
from integrations.stripe.models import Subscription
from segments.compiler import event_filter_q
from segments.conditions import parse_event_filters
from segments.traits.folding import fold_rows, typed_columns, value_of
from segments.traits.kinds import (
    ACTIVE_BACKFILL_STATES,
    ACTIVITY_TYPES,
    BACKFILL_CHUNK,
    EMPTY_VALUES,
    PROPERTY_KINDS,
    Kind,
)
from segments.traits.trial_reader import trial_reader

# --- writing values ----------------------------------------------------------------------------------------


def _matching_events(trait: ComputedTrait, now: datetime) -> QuerySet[Event]:
    """The events a trait reads: its event, or any event the person performed (not Stripe's billing events), its
    property filters, and — since the trial started — only those from the customer's current trial on."""
    if trait.event:
        events = Event.objects.filter(name=trait.event)
    else:
        stripe = Source.objects.filter(kind=Source.Kind.STRIPE).values("pk")
        events = Event.objects.filter(type__in=ACTIVITY_TYPES).exclude(source_id__in=stripe)
    for item in parse_event_filters(trait.where, "where"):
        events = events.filter(event_filter_q(item, now))
    if trait.since_trial_start:
        events = events.filter(trial_reader().events_in_current_trial())
    return events


def _recomputed(trait: ComputedTrait) -> bool:
    """Whether a trait is recomputed over its window rather than folded in: the last N days (events leave it)
    or since the trial started (a new trial starts it over)."""
    return trait.window_days is not None or trait.since_trial_start


def _rows_by_customer(trait: ComputedTrait, events: QuerySet[Event]) -> dict[int, list[tuple[int, datetime, Any]]]:
    fields = ["id", "customer_id", "timestamp"]
    if trait.kind in PROPERTY_KINDS:
        # The property name is data: one JSON key, whatever it holds (`__`, dots), never a built lookup path.
        events = events.annotate(read_value=KeyTransform(trait.property, "properties"))
        fields.append("read_value")
    grouped: dict[int, list[tuple[int, datetime, Any]]] = defaultdict(list)
    for row in events.values_list(*fields):
        grouped[row[1]].append((row[0], row[2], row[3] if len(row) > 3 else None))
    return grouped


def _expiry(trait: ComputedTrait, rows: list[tuple[int, datetime, Any]]) -> datetime | None:
    if trait.window_days is None or not rows:
        return None
    return min(at for _, at, _ in rows) + timedelta(days=trait.window_days)


def _store(
    trait: ComputedTrait,
    updates: dict[int, tuple[dict[str, Any], datetime | None]],
    existing: dict[int, ComputedTraitValue],
    now: datetime,
) -> list[TraitChange]:
    """Write new states; record and return the changes of value. Rows whose value did not change keep their
    value columns (only the state moves), and nothing is written for a customer whose state is unchanged."""
    to_create: list[ComputedTraitValue] = []
    to_update: list[ComputedTraitValue] = []
    changed: list[ComputedTraitChange] = []
    for customer_id, (state, expires_at) in updates.items():
        value = value_of(trait.kind, state)
        row = existing.get(customer_id)
        old = row.value if row is not None else EMPTY_VALUES.get(trait.kind)
        if row is not None and row.state == state and row.expires_at == expires_at:
            continue
        if row is None:
            if value == old and not state:
                continue
            row = ComputedTraitValue(trait=trait, customer_id=customer_id)
            to_create.append(row)
        else:
            to_update.append(row)
        row.state, row.value, row.expires_at, row.updated_at = state, value, expires_at, now
        for column, typed in typed_columns(trait.kind, value).items():
            setattr(row, column, typed)
        if value != old:
            changed.append(ComputedTraitChange(trait=trait, customer_id=customer_id, old=old, new=value, at=now))
    ComputedTraitValue.objects.bulk_create(to_create, batch_size=1000)
    ComputedTraitValue.objects.bulk_update(
        to_update,
        ["state", "value", "expires_at", "updated_at", "number_value", "text_value", "bool_value", "date_value"],
        batch_size=1000,
    )
    created = ComputedTraitChange.objects.bulk_create(changed, batch_size=1000)
    return [TraitChange(trait.pk, trait.key, trait.name, c.customer_id, c.old, c.new, c.pk or 0) for c in created]


def _recompute(trait: ComputedTrait, customer_ids: Sequence[int], now: datetime) -> list[TraitChange]:
    """Values of these customers from their history (the window's, for a windowed trait), from scratch."""
    existing = {v.customer_id: v for v in ComputedTraitValue.objects.filter(trait=trait, customer_id__in=customer_ids)}
    if trait.kind == Kind.TRIAL_DAYS_REMAINING:
        ends = _trial_ends(customer_ids, now)
        updates = {
            cid: ({"trial_end": ends[cid].isoformat()} if cid in ends else {}, ends.get(cid))
            for cid in {*customer_ids}
            if cid in ends or cid in existing
        }
        return _store(trait, updates, existing, now)
    events = _matching_events(trait, now).filter(customer_id__in=customer_ids)
    if trait.window_days is not None:
        events = events.filter(timestamp__gte=now - timedelta(days=trait.window_days), timestamp__lte=now)
    grouped = _rows_by_customer(trait, events)
    updates = {
        cid: (fold_rows(trait.kind, {}, grouped.get(cid, [])), _expiry(trait, grouped.get(cid, [])))
        for cid in {*grouped, *existing}
    }
    return _store(trait, updates, existing, now)


def _trial_ends(customer_ids: Sequence[int], now: datetime) -> dict[int, datetime]:
    """When each customer's running trial ends: the current trial's end while it is in trial (a Stripe trial or
    one without a card, from a signup); for a trialing subscription the loop has not made a trial of yet, its
    `trial_end`."""
    reader = trial_reader()
    ends = dict(reader.running_trial_ends(customer_ids, now))
    untracked = Subscription.objects.filter(
        customer_id__in=customer_ids, status=Subscription.Status.TRIALING, trial_end__gt=now
    ).exclude(customer_id__in=reader.current_trial_customers(customer_ids))
    subscription_ends = untracked.values("customer_id").annotate(end=Min("trial_end")).values_list("customer_id", "end")
    return {**dict(subscription_ends), **ends}


def _fold_in(trait: ComputedTrait, event_ids: Sequence[int], now: datetime) -> list[TraitChange]:
    """The incremental path: fold a batch's matching events into the running states of all-time traits."""
    grouped = _rows_by_customer(trait, _matching_events(trait, now).filter(pk__in=event_ids))
    if not grouped:
        return []
    existing = {v.customer_id: v for v in ComputedTraitValue.objects.filter(trait=trait, customer_id__in=grouped)}
    updates: dict[int, tuple[dict[str, Any], datetime | None]] = {
        cid: (fold_rows(trait.kind, existing[cid].state if cid in existing else {}, rows), None)
        for cid, rows in grouped.items()
    }
    return _store(trait, updates, existing, now)


def computed_traits_apply(*, event_ids: Sequence[int], now: datetime | None = None) -> list[TraitChange]:
    """Bring the computed traits of the customers a stored batch touched up to date; returns the changes.

    Runs inside the caller's transaction, after the customers are locked. A batch already applied (a retried
    task) changes nothing. Recomputed from history instead of folded in: windowed traits; every trait of the
    customers a profile merge in this batch joined (the merged profile's events now count for them, and the merge
    dropped its values of the traits both had: audiences.merges); and batches received before a trait's backfill
    finished (the backfill may have counted them already).
    """
    if not event_ids:
        return []
    now = now or timezone.now()
    rows = list(
        Event.objects.filter(pk__in=event_ids)
        .order_by()
        .values_list("pk", "customer_id", "name", "message_id", "received_at", "user_id", "anonymous_id", "type")
    )
    # Only a call naming a user id and another id (an anonymous id, or alias's previous id) can have merged.
    linking = {row[3] for row in rows if row[5] and (row[6] or row[7] == Event.Type.ALIAS)}
    merged = set(
        ProfileMerge.objects.filter(
            outcome=ProfileMerge.Outcome.MERGED, message_id__in=linking, customer_id__in={row[1] for row in rows}
        ).values_list("customer_id", flat=True)
        if linking
        else []
    )
    traits = list(ComputedTrait.objects.filter(backfill_status__in=ACTIVE_BACKFILL_STATES))
    if not merged:
        names = {row[2] for row in rows}
        traits = [trait for trait in traits if trait.event in names or _counts_any_event(trait)]
    if not traits:
        return []
    try:
        with transaction.atomic():
            AppliedEventBatch.objects.create(first_event_id=min(event_ids), applied_at=now)
    except IntegrityError:
        return []  # this batch was folded in already
    received = max(row[4] for row in rows)
    changes: list[TraitChange] = []
    activity: set[int] | None = None
    for trait in traits:
        if merged:
            changes += _recompute(trait, sorted(merged), now)
        if not trait.event and not _counts_any_event(trait):
            continue  # trial days remaining reads the trial, not events (computed_traits_trial_changed)
        if trait.event:
            read = {row[0] for row in rows if row[2] == trait.event}
        else:
            activity = _activity(event_ids) if activity is None else activity
            read = activity
        touched = sorted({row[1] for row in rows if row[0] in read} - merged)
        if not touched:
            continue
        finished = trait.backfill_finished_at
        if _recomputed(trait) or finished is None or received <= finished:
            changes += _recompute(trait, touched, now)
            continue
        changes += _fold_in(trait, [row[0] for row in rows if row[0] in read and row[1] not in merged], now)
    return changes


def _counts_any_event(trait: ComputedTrait) -> bool:
    """A trait with no event counts any activity call (days active in the trial), except trial days remaining."""
    return not trait.event and trait.kind != Kind.TRIAL_DAYS_REMAINING


def _activity(event_ids: Sequence[int]) -> set[int]:
    """The batch's events that "any event" counts (activity calls, not Stripe's)."""
    stripe = Source.objects.filter(kind=Source.Kind.STRIPE).values("pk")
    return set(
        Event.objects.filter(pk__in=event_ids, type__in=ACTIVITY_TYPES)
        .exclude(source_id__in=stripe)
        .values_list("pk", flat=True)
    )


def computed_traits_trial_changed(*, customer_ids: Sequence[int], now: datetime) -> list[TraitChange]:
    """The customers' trials started, restarted, moved their end or left the trial: recompute the traits that
    read the trial — trial days remaining, and every trait counted since the trial started."""
    if not customer_ids:
        return []
    traits = ComputedTrait.objects.filter(
        Q(kind=Kind.TRIAL_DAYS_REMAINING) | Q(since_trial_start=True), backfill_status__in=ACTIVE_BACKFILL_STATES
    )
    changes: list[TraitChange] = []
    for trait in traits:
        changes += _recompute(trait, list(customer_ids), now)
    return changes


def computed_traits_refresh(
    *, customer_ids: Sequence[int], kinds: Iterable[str] | None = None, now: datetime | None = None
) -> list[TraitChange]:
    """Recompute the given customers' traits (all, or of the given kinds) — for billing changes and repairs."""
    now = now or timezone.now()
    traits = ComputedTrait.objects.filter(backfill_status__in=ACTIVE_BACKFILL_STATES)
    if kinds is not None:
        traits = traits.filter(kind__in=list(kinds))
    changes: list[TraitChange] = []
    for trait in traits:
        changes += _recompute(trait, list(customer_ids), now)
    return changes


def computed_traits_decay(*, now: datetime | None = None, limit: int = 5000) -> list[TraitChange]:
    """The time sweep's part: values that time changes — a windowed trait's oldest event leaving the window, a
    trial ending — recomputed for just those customers (days since / days remaining are derived from a stored
    time when compared, so they need nothing here)."""
    now = now or timezone.now()
    due = (
        ComputedTraitValue.objects.filter(expires_at__lte=now)
        .order_by("expires_at")
        .values_list("trait_id", "customer_id")[:limit]
    )
    by_trait: dict[int, list[int]] = defaultdict(list)
    for trait_id, customer_id in due:
        by_trait[trait_id].append(customer_id)
    changes: list[TraitChange] = []
    for trait in ComputedTrait.objects.filter(pk__in=by_trait):
        changes += _recompute(trait, by_trait[trait.pk], now)
    return changes


# --- backfill ----------------------------------------------------------------------------------------------


def _backfill_customers(trait: ComputedTrait, now: datetime) -> QuerySet[Customer]:
    if trait.kind == Kind.TRIAL_DAYS_REMAINING:
        in_trial = trial_reader().running_trial_ends(None, now)
        having = Q(subscriptions__status=Subscription.Status.TRIALING, subscriptions__trial_end__gt=now) | Q(
            pk__in=in_trial.values("customer_id")
        )
    else:
        events = _matching_events(trait, now)
        if trait.window_days is not None:
            events = events.filter(timestamp__gte=now - timedelta(days=trait.window_days))
        having = Q(pk__in=events.values("customer_id"))
    return Customer.objects.filter(having | Q(computed_values__trait=trait)).distinct().order_by("pk")


def computed_trait_backfill(*, trait: ComputedTrait, now: datetime | None = None) -> int:
    """Compute a (new or changed) definition for every customer with matching history, in chunks of customers,
    saving progress after each chunk so the UI can show it. Returns how many values changed."""
    now = now or timezone.now()
    customers = _backfill_customers(trait, now)
    ComputedTrait.objects.filter(pk=trait.pk).update(
        backfill_status=ComputedTrait.Backfill.RUNNING,
        backfill_total=customers.count(),
        backfill_done=0,
        backfill_started_at=timezone.now(),
        backfill_error="",
    )
    changed, done, after = 0, 0, 0
    while True:
        chunk = list(customers.filter(pk__gt=after).values_list("pk", flat=True)[:BACKFILL_CHUNK])
        if not chunk:
            break
        with transaction.atomic():
            changed += len(_recompute(trait, chunk, now))
        done, after = done + len(chunk), chunk[-1]
        ComputedTrait.objects.filter(pk=trait.pk).update(backfill_done=done)
    ComputedTrait.objects.filter(pk=trait.pk).update(
        backfill_status=ComputedTrait.Backfill.DONE, backfill_done=done, backfill_finished_at=timezone.now()
    )
    return changed


def traits_on_batch(facts: BatchFacts, now: datetime) -> list[TraitChange]:
    """The computed-trait phase of a stored batch (audiences.pipeline.on_batch_traits, registered in
    SegmentsConfig.ready()): fold in or recompute the traits the batch's events feed, and — when Stripe told
    something — the trial days remaining of the customers it told about."""
    changes = computed_traits_apply(event_ids=facts.event_ids, now=now)
    if facts.billing_changed:
        changes += computed_traits_refresh(
            customer_ids=sorted(facts.billing_changed), kinds=[ComputedTrait.Kind.TRIAL_DAYS_REMAINING], now=now
        )
    return changes


def applied_batches_purge(now: datetime) -> int:
    """Housekeeping step (registered in config.housekeeping by SegmentsConfig.ready): forget the batches folded
    into computed traits after 7 days — a task is never retried that late. Returns the rows deleted."""
    return AppliedEventBatch.objects.filter(applied_at__lt=now - timedelta(days=7)).delete()[0]
