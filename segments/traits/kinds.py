"""Computed trait kinds: what each kind reads, what a customer without a value reads as, and the type and typed
column segments compare its value on (the catalogue's `computed.<key>` properties)."""

from __future__ import annotations

from typing import Any

from audiences.models import ComputedTrait, Event
from segments.value_types import ValueType

Kind = ComputedTrait.Kind
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
