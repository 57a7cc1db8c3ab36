"""Folding events into a computed trait's running state, and reading its value from the state.

Every fold is commutative — first/last compare (timestamp, event id), ties of "most frequent" go to the
alphabetically first value — so events arriving out of order give the same result as a recomputation from
history.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from segments.traits.kinds import NUMERIC_KINDS, UNIQUE_LIST_LIMIT, Kind, value_column


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


def fold_rows(kind: str, state: dict[str, Any], rows: Iterable[tuple[int, datetime, Any]]) -> dict[str, Any]:
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


def value_of(kind: str, state: dict[str, Any]) -> Any:
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


def typed_columns(kind: str, value: Any) -> dict[str, Any]:
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
