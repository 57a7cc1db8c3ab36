"""Computed trait definitions: what a definition may say, the type segments compare its value as, and saving
one (a new or changed definition is backfilled from history by a task queued on commit).

Computed traits are profile data (audiences.models: ComputedTrait, ComputedTraitValue, ComputedTraitChange), but
their definitions are written in the condition language — event property filters compiled by segments.compiler —
and their values are compared by segments' conditions as `computed.<key>`; so they are defined and evaluated here,
in the conditions layer (docs/architecture.md).
"""

from __future__ import annotations

import re
from typing import Any

from django.db import IntegrityError, transaction

from audiences.models import ComputedTrait, Event
from segments.conditions import InvalidCondition, ValueType, parse_event_filters

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
    from segments.traits.tasks import backfill_computed_trait  # the task runs the evaluation, which imports this

    backfill_computed_trait.delay(trait_id)
