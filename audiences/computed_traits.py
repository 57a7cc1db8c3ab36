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
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, Min, OuterRef, Q, QuerySet
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
from integrations.stripe.models import Subscription
from segments.compiler import event_filter_q
from segments.conditions import InvalidCondition, ValueType, parse_event_filters
from trials.loop.models import Trial, TrialStage

Kind = ComputedTrait.Kind
KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
PROPERTY_KINDS = {
    Kind.SUM, Kind.AVERAGE, Kind.MIN, Kind.MAX, Kind.FIRST_VALUE, Kind.LAST_VALUE, Kind.MOST_FREQUENT,
    Kind.UNIQUE_LIST, Kind.UNIQUE_COUNT,
}  # fmt: skip
NUMERIC_KINDS = {Kind.SUM, Kind.AVERAGE, Kind.MIN, Kind.MAX}
ACTIVITY_TYPES = (Event.Type.TRACK, Event.Type.PAGE, Event.Type.SCREEN)
"""What "any event" counts: calls the person's product made about what they did (identify, group and alias calls
say who they are, not what they did)."""
IN_TRIAL_STAGES = (TrialStage.TRIGGER, TrialStage.ACTIVATE, TrialStage.HABIT, TrialStage.SIGNAL)
UNIQUE_LIST_LIMIT = 500
BACKFILL_CHUNK = 2000
# Traits being or done backfilling are kept current; a pending one waits for its backfill to read history.
ACTIVE_BACKFILL_STATES = (ComputedTrait.Backfill.RUNNING, ComputedTrait.Backfill.DONE)
# What a customer without any matching event reads as (None: no value, "is not set"); keyed by kind value.
EMPTY_VALUES: dict[str, Any] = {
    Kind.COUNT: 0, Kind.SUM: 0, Kind.UNIQUE_DAYS: 0, Kind.UNIQUE_COUNT: 0, Kind.EVER: False, Kind.UNIQUE_LIST: [],
}  # fmt: skip


def trait_value_type(kind: str) -> ValueType:
    """The type segments compare a kind's value as (days since/remaining are numbers derived from a time)."""
    if kind in (Kind.FIRST_VALUE, Kind.LAST_VALUE, Kind.MOST_FREQUENT):
        return ValueType.STRING
    if kind == Kind.UNIQUE_LIST:
        return ValueType.LIST
    if kind == Kind.EVER:
        return ValueType.BOOLEAN
    return ValueType.NUMBER


def value_column(kind: str) -> str:
    """The typed column of ComputedTraitValue a kind's value is compared on."""
    if kind in (Kind.DAYS_SINCE_LAST, Kind.TRIAL_DAYS_REMAINING):
        return "date_value"
    return {
        ValueType.STRING: "text_value",
        ValueType.LIST: "text_value",
        ValueType.BOOLEAN: "bool_value",
        ValueType.NUMBER: "number_value",
    }[trait_value_type(kind)]


class InvalidTrait(ValueError):
    """A definition that cannot be accepted; `field` names the bad field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class TraitChange:
    """One recorded change of a customer's value, for audiences and destinations."""

    trait_id: int
    trait_key: str
    trait_name: str
    customer_id: int
    old: Any
    new: Any
    change_id: int


# --- definitions -------------------------------------------------------------------------------------------


def _validated(
    *,
    key: str,
    name: str,
    kind: str,
    event: str,
    property: str,
    where: Any,
    window_days: int | None,
    since_trial_start: bool,
) -> dict[str, Any]:
    key, name, event, property = key.strip(), name.strip(), event.strip(), property.strip()
    if not KEY_PATTERN.match(key):
        raise InvalidTrait("key", "letters, digits and _ only, not starting with a digit (at most 100)")
    if not name:
        raise InvalidTrait("name", "a name is required")
    if kind not in Kind.values:
        raise InvalidTrait("kind", f"must be one of {', '.join(Kind.values)}")
    if kind == Kind.TRIAL_DAYS_REMAINING:
        if event or property or where or window_days or since_trial_start:
            raise InvalidTrait(
                "kind", "trial days remaining comes from the trial: no event, property, filter or window"
            )
        return {
            "key": key, "name": name, "kind": kind, "event": "", "property": "", "where": [], "window_days": None,
            "since_trial_start": False,
        }  # fmt: skip
    if not event and kind in PROPERTY_KINDS:
        raise InvalidTrait("event", "this kind reads a property: name the event it is read from")
    if window_days is not None and since_trial_start:
        raise InvalidTrait("window_days", "choose one window: the last N days, or since the trial started")
    if kind in PROPERTY_KINDS and not property:
        raise InvalidTrait("property", "this kind reads an event property: name it")
    if kind not in PROPERTY_KINDS and property:
        raise InvalidTrait("property", "this kind does not read a property")
    if window_days is not None and (isinstance(window_days, bool) or not isinstance(window_days, int)):
        raise InvalidTrait("window_days", "must be a whole number of days")
    if window_days is not None and not 1 <= window_days <= 3650:
        raise InvalidTrait("window_days", "must be between 1 and 3650 days")
    try:
        filters = parse_event_filters(where, "where")
    except InvalidCondition as error:
        raise InvalidTrait("where", str(error)) from error
    return {
        "key": key,
        "name": name,
        "kind": kind,
        "event": event,
        "property": property,
        "where": [f.__dict__ for f in filters],
        "window_days": window_days,
        "since_trial_start": bool(since_trial_start),
    }


def computed_trait_save(
    *,
    key: str,
    name: str,
    kind: str,
    event: str = "",
    property: str = "",
    where: Any = None,
    window_days: int | None = None,
    since_trial_start: bool = False,
    description: str = "",
    trait: ComputedTrait | None = None,
) -> ComputedTrait:
    """Create or change a definition (InvalidTrait names the bad field); a new or changed definition is
    backfilled from history by a task queued on commit. An empty `event` means any event the customer performed
    (for the kinds that read no property)."""
    fields = _validated(
        key=key,
        name=name,
        kind=kind,
        event=event,
        property=property,
        where=where or [],
        window_days=window_days,
        since_trial_start=since_trial_start,
    )
    definition = ("kind", "event", "property", "where", "window_days", "since_trial_start")
    with transaction.atomic():
        trait = trait or ComputedTrait()
        redefined = trait.pk is None or any(getattr(trait, f) != fields[f] for f in definition)
        for name_, value in fields.items():
            setattr(trait, name_, value)
        trait.description = description
        if redefined:
            trait.backfill_status = ComputedTrait.Backfill.PENDING
            trait.backfill_done = trait.backfill_total = 0
            trait.backfill_started_at = trait.backfill_finished_at = None
            trait.backfill_error = ""
        try:
            with transaction.atomic():
                trait.save()
        except IntegrityError as error:
            raise InvalidTrait("key", f"a computed trait with key {fields['key']!r} already exists") from error
        if redefined:
            trait_id = trait.pk
            transaction.on_commit(lambda: _queue_backfill(trait_id))
    return trait


def _queue_backfill(trait_id: int) -> None:
    from audiences.tasks import backfill_computed_trait

    backfill_computed_trait.delay(trait_id)


# --- folding events into state -----------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fold(kind: str, state: dict[str, Any], rows: Iterable[tuple[int, datetime, Any]]) -> dict[str, Any]:
    """Fold events (id, timestamp, property value) into a running state; order of the rows does not matter."""
    state = {**state}
    for event_id, at, raw in rows:
        moment = [at.isoformat(), event_id]
        if kind in (Kind.COUNT, Kind.EVER):
            state["n"] = state.get("n", 0) + 1
        elif kind in NUMERIC_KINDS:
            number = _number(raw)
            if number is None:
                continue
            state["n"] = state.get("n", 0) + 1
            state["sum"] = state.get("sum", 0.0) + number
            state["min"] = number if "min" not in state else min(state["min"], number)
            state["max"] = number if "max" not in state else max(state["max"], number)
        elif kind == Kind.UNIQUE_DAYS:
            state["days"] = sorted({*state.get("days", []), at.astimezone(UTC).date().isoformat()})
        elif kind in (Kind.FIRST_VALUE, Kind.LAST_VALUE):
            text = _text(raw)
            if text is None:
                continue
            current = state.get("at")
            earlier = current is None or _moment_key(moment) < _moment_key(current)
            later = current is None or _moment_key(moment) > _moment_key(current)
            if (kind == Kind.FIRST_VALUE and earlier) or (kind == Kind.LAST_VALUE and later):
                state["at"], state["v"] = moment, text
        elif kind == Kind.MOST_FREQUENT:
            text = _text(raw)
            if text is not None:
                counts = dict(state.get("counts", {}))
                counts[text] = counts.get(text, 0) + 1
                state["counts"] = counts
        elif kind in (Kind.UNIQUE_LIST, Kind.UNIQUE_COUNT):
            text = _text(raw)
            if text is not None:
                state["values"] = sorted({*state.get("values", []), text})[:UNIQUE_LIST_LIMIT]
        elif kind == Kind.DAYS_SINCE_LAST:
            current = state.get("at")
            if current is None or _moment_key(moment) > _moment_key(current):
                state["at"] = moment
    return state


def _moment_key(moment: list[Any]) -> tuple[datetime, int]:
    return datetime.fromisoformat(moment[0]), int(moment[1])


def _value_of(kind: str, state: dict[str, Any]) -> Any:
    """The trait's value from its state (None when there is none)."""
    if kind == Kind.COUNT:
        return state.get("n", 0)
    if kind == Kind.EVER:
        return state.get("n", 0) > 0
    if kind in NUMERIC_KINDS:
        if not state.get("n"):
            return 0 if kind == Kind.SUM else None
        total = state["sum"]
        value: float = {
            "sum": total, "average": total / state["n"], "min": state["min"], "max": state["max"],
        }[kind]  # fmt: skip
        return round(value, 6)
    if kind == Kind.UNIQUE_DAYS:
        return len(state.get("days", []))
    if kind in (Kind.FIRST_VALUE, Kind.LAST_VALUE):
        return state.get("v")
    if kind == Kind.MOST_FREQUENT:
        counts: dict[str, int] = state.get("counts", {})
        return min(counts, key=lambda v: (-counts[v], v)) if counts else None
    if kind == Kind.UNIQUE_LIST:
        return list(state.get("values", []))
    if kind == Kind.UNIQUE_COUNT:
        return len(state.get("values", []))
    if kind == Kind.DAYS_SINCE_LAST:
        return state["at"][0] if state.get("at") else None
    return state.get("trial_end")  # trial_days_remaining


def _typed_columns(kind: str, value: Any) -> dict[str, Any]:
    columns: dict[str, Any] = {"number_value": None, "text_value": None, "bool_value": None, "date_value": None}
    if value is None:
        return columns
    column = value_column(kind)
    if column == "date_value":
        columns[column] = datetime.fromisoformat(value)
    elif kind == Kind.UNIQUE_LIST:
        # Stored as JSON text so "contains" matches a whole quoted element, as for list traits.
        columns[column] = json.dumps(value)
    else:
        columns[column] = value
    return columns


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
        in_trial = Trial.objects.filter(
            customer_id=OuterRef("customer_id"), is_current=True, started_at__lte=OuterRef("timestamp")
        )
        events = events.filter(Exists(in_trial))
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
        value = _value_of(trait.kind, state)
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
        for column, typed in _typed_columns(trait.kind, value).items():
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
        cid: (_fold(trait.kind, {}, grouped.get(cid, [])), _expiry(trait, grouped.get(cid, [])))
        for cid in {*grouped, *existing}
    }
    return _store(trait, updates, existing, now)


def _trial_ends(customer_ids: Sequence[int], now: datetime) -> dict[int, datetime]:
    """When each customer's running trial ends: the current trial's end while it is in trial (a Stripe trial or
    one without a card, from a signup); for a trialing subscription the loop has not made a trial of yet, its
    `trial_end`."""
    trials = Trial.objects.filter(customer_id__in=customer_ids, is_current=True)
    ends = dict(trials.filter(stage__in=IN_TRIAL_STAGES, ends_at__gt=now).values_list("customer_id", "ends_at"))
    untracked = Subscription.objects.filter(
        customer_id__in=customer_ids, status=Subscription.Status.TRIALING, trial_end__gt=now
    ).exclude(customer_id__in=trials.values("customer_id"))
    subscription_ends = untracked.values("customer_id").annotate(end=Min("trial_end")).values_list("customer_id", "end")
    return {**dict(subscription_ends), **ends}


def _fold_in(trait: ComputedTrait, event_ids: Sequence[int], now: datetime) -> list[TraitChange]:
    """The incremental path: fold a batch's matching events into the running states of all-time traits."""
    grouped = _rows_by_customer(trait, _matching_events(trait, now).filter(pk__in=event_ids))
    if not grouped:
        return []
    existing = {v.customer_id: v for v in ComputedTraitValue.objects.filter(trait=trait, customer_id__in=grouped)}
    updates: dict[int, tuple[dict[str, Any], datetime | None]] = {
        cid: (_fold(trait.kind, existing[cid].state if cid in existing else {}, rows), None)
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
        in_trial = Trial.objects.filter(is_current=True, stage__in=IN_TRIAL_STAGES, ends_at__gt=now)
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


def applied_batches_purge(now: datetime) -> int:
    """Housekeeping step (registered in config.housekeeping): forget applied batches after 7 days — a task is
    never retried that late. Returns the rows deleted."""
    return AppliedEventBatch.objects.filter(applied_at__lt=now - timedelta(days=7)).delete()[0]
