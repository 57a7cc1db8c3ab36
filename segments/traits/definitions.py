"""Computed trait definitions: what a definition may say (saving one is segments.traits.services).

Computed traits are profile data (audiences.models: ComputedTrait, ComputedTraitValue, ComputedTraitChange), but
their definitions are written in the condition language — event property filters compiled by segments.compiler —
and their values are compared by segments' conditions as `computed.<key>`; so they are defined and evaluated here,
in the conditions layer (docs/architecture.md).
"""

from __future__ import annotations

import re
from typing import Any

from segments.conditions import InvalidCondition, parse_event_filters
from segments.traits.kinds import PROPERTY_KINDS, Kind

KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


class InvalidTrait(ValueError):
    """A definition that cannot be accepted; `field` names the bad field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


# --- definitions -------------------------------------------------------------------------------------------


def definition_validated(
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
