"""The condition language: a validated tree of AND/OR groups (with NOT) over property/operator/value leaves.

One typed schema for storage, the API and (later) the builder UI. A tree is parsed from JSON with
`parse_tree`, which refuses anything the compiler could not turn into SQL — unknown property, operator not
valid for the property's type, wrong value type, empty group — with a message naming the bad leaf by its
path (e.g. `children[1].children[0]`). Nothing is left to fail at evaluation time.

JSON shapes:
    {"type": "group", "operator": "and" | "or", "negate": false, "children": [...]}
    {"type": "condition", "property": "subscriber.mrr", "operator": "gt", "value": 100}
    {"type": "event", "event": "Project Created", "operator": "at_least", "count": 3, "within_days": 7,
     "where": [{"property": "plan", "operator": "equals", "value": "team"}]}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from segments.catalogue import EVENT_FILTER_OPERATORS, PropertySpec, property_named
from segments.models import Segment
from segments.regex_dialect import UnsupportedPattern, canonical
from segments.value_types import ValueType


class InvalidCondition(ValueError):
    """A tree that cannot be accepted; `path` names the bad node."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path, self.message = path, message


NEGATIVE_OPERATORS = {"not_equals", "not_one_of", "not_contains"}
OPERATORS: dict[ValueType, set[str]] = {
    ValueType.STRING: {
        "equals", "not_equals", "one_of", "not_one_of", "contains", "not_contains", "starts_with", "ends_with",
        "matches_regex", "is_set", "is_not_set",
    },
    ValueType.NUMBER: {"equals", "not_equals", "gt", "gte", "lt", "lte", "between", "is_set", "is_not_set"},
    ValueType.BOOLEAN: {"is_true", "is_false", "is_set", "is_not_set"},
    ValueType.DATE: {
        "before", "after", "on", "within_last_days", "within_next_days", "more_than_days_ago", "is_set", "is_not_set",
    },
    ValueType.LIST: {"contains", "not_contains", "is_set", "is_not_set"},
}  # fmt: skip
EVENT_COUNT_OPERATORS = {"at_least", "at_most", "exactly", "not_performed"}
EVENT_DATE_OPERATORS = {"first_before", "first_after", "last_before", "last_after"}
EVENT_OPERATORS = EVENT_COUNT_OPERATORS | EVENT_DATE_OPERATORS
NO_VALUE = {"is_set", "is_not_set", "is_true", "is_false"}
MAX_DEPTH = 8
MAX_LEAVES = 100


@dataclass(frozen=True)
class Condition:
    """A leaf on a profile, subscription or trait property; `spec` is the catalogue entry, resolved once."""

    property: str
    operator: str
    value: Any = None
    spec: PropertySpec | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class EventFilter:
    """A filter on the properties of the counted events (string comparison of one property)."""

    property: str
    operator: str
    value: Any = None


@dataclass(frozen=True)
class EventCondition:
    """A behavioural leaf: how often the customer performed an event, optionally within a window."""

    event: str
    operator: str
    count: int = 1
    within_days: int | None = None
    between: tuple[date, date] | None = None
    where: tuple[EventFilter, ...] = ()
    on_date: date | None = None  # for first/last performed before/after


@dataclass(frozen=True)
class SegmentCondition:
    """Membership of another segment (`in` / `not_in`), evaluated from that segment's own conditions, so it is
    never staler than the segment using it. `tree` is the other segment's parsed tree, resolved at parse time."""

    segment_id: int
    operator: str
    tree: Group | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Group:
    """AND/OR of children, optionally negated."""

    operator: str
    children: tuple[Node, ...] = field(default_factory=tuple)
    negate: bool = False


Node = Group | Condition | EventCondition | SegmentCondition


MAX_DAYS = 36_500  # a hundred years: day counts in conditions (windows, "in the last N days")
MAX_COUNT = 1_000_000_000
FIRST_DAY, LAST_DAY = date(1000, 1, 1), date(8999, 12, 31)  # the dates segments.typed_sql reads in JSON too


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidCondition(path, f"value must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise InvalidCondition(path, "value must be a finite number")
    return number


def _whole(value: Any, path: str, name: str, most: int = MAX_COUNT) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise InvalidCondition(path, f"{name} must be a whole number from 0 to {most:,}, got {value!r}")
    return int(value)


def _date(value: Any, path: str) -> date:
    if not isinstance(value, str):
        raise InvalidCondition(path, f"value must be a date (YYYY-MM-DD), got {value!r}")
    try:
        day = date.fromisoformat(value[:10])
    except ValueError as error:
        raise InvalidCondition(path, f"value {value!r} is not a date (YYYY-MM-DD)") from error
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidCondition(path, f"dates run from {FIRST_DAY} to {LAST_DAY}, got {value!r}")
    return day


def check_value(value_type: ValueType, operator: str, value: Any, path: str, choices: tuple[str, ...] = ()) -> Any:
    """The value normalised for the compiler, or InvalidCondition saying what is wrong with it."""
    if operator in NO_VALUE:
        return None
    if operator in ("one_of", "not_one_of"):
        if not isinstance(value, list) or not value or not all(isinstance(v, str | int | float) for v in value):
            raise InvalidCondition(path, f"{operator} needs a non-empty list of values")
        if choices and (bad := [v for v in value if v not in choices]):
            raise InvalidCondition(path, f"{bad[0]!r} is not one of {', '.join(choices)}")
        return list(value)
    if operator == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise InvalidCondition(path, "between needs [low, high]")
        low, high = _number(value[0], path), _number(value[1], path)
        if low > high:
            raise InvalidCondition(path, "between needs low ≤ high")
        return [low, high]
    if operator in ("within_last_days", "within_next_days", "more_than_days_ago"):
        return _whole(value, path, "the number of days", MAX_DAYS)
    if operator == "matches_regex":
        if not isinstance(value, str):
            raise InvalidCondition(path, "matches_regex needs a pattern string")
        try:
            canonical(value)
        except UnsupportedPattern as error:
            raise InvalidCondition(path, f"invalid regular expression: {error}") from error
        return value
    if value_type == ValueType.NUMBER:
        return _number(value, path)
    if value_type == ValueType.DATE:
        return _date(value, path).isoformat()
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise InvalidCondition(path, f"value must be text, got {value!r}")
    if choices and value not in choices:
        raise InvalidCondition(path, f"{value!r} is not one of {', '.join(choices)}")
    return value


def _refuse_nul(raw: Any, path: str) -> None:
    """PostgreSQL text and jsonb cannot hold the NUL character: a tree holding one is refused, not stored."""
    pending = [raw]
    while pending:
        item = pending.pop()
        if isinstance(item, str) and "\x00" in item:
            raise InvalidCondition(path, "text cannot contain the NUL character (\\u0000)")
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def parse_event_filters(raw: Any, path: str) -> tuple[EventFilter, ...]:
    """Property filters on events (shared by event conditions and computed traits); `path` names the list."""
    if raw is None:
        return ()
    _refuse_nul(raw, path)
    if not isinstance(raw, list):
        raise InvalidCondition(path, "filters must be a list")
    filters = []
    for index, item in enumerate(raw):
        item_path = f"{path}[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("property"), str) or not item["property"]:
            raise InvalidCondition(item_path, "a filter needs a property name")
        if item.get("operator") not in EVENT_FILTER_OPERATORS:
            raise InvalidCondition(item_path, f"operator must be one of {', '.join(sorted(EVENT_FILTER_OPERATORS))}")
        value = check_value(ValueType.STRING, item["operator"], item.get("value"), item_path)
        filters.append(EventFilter(item["property"], item["operator"], value))
    return tuple(filters)


def _parse_event(raw: dict[str, Any], path: str) -> EventCondition:
    name = raw.get("event")
    if not isinstance(name, str) or not name.strip():
        raise InvalidCondition(path, "an event condition needs the event name")
    operator = raw.get("operator")
    if operator not in EVENT_OPERATORS:
        raise InvalidCondition(path, f"operator must be one of {', '.join(sorted(EVENT_OPERATORS))}")
    on_date = None
    if operator in EVENT_DATE_OPERATORS:
        on_date = _date(raw.get("date"), f"{path}.date")
    count = (
        1
        if operator != "at_least" and operator not in ("at_most", "exactly")
        else _whole(raw.get("count", 1), path, "count")
    )
    within = raw.get("within_days")
    between = raw.get("between")
    if within is not None and between is not None:
        raise InvalidCondition(path, "give within_days or between, not both")
    window: tuple[date, date] | None = None
    if between is not None:
        if not isinstance(between, list) or len(between) != 2:
            raise InvalidCondition(path, "between needs [first day, last day]")
        window = (_date(between[0], path), _date(between[1], path))
        if window[0] > window[1]:
            raise InvalidCondition(path, "between needs the first day before the last")
    filters = parse_event_filters(raw.get("where"), f"{path}.where")
    return EventCondition(
        event=name.strip(),
        operator=operator,
        count=count,
        within_days=_whole(within, path, "within_days", MAX_DAYS) if within is not None else None,
        between=window,
        where=filters,
        on_date=on_date,
    )


def _parse_segment(raw: dict[str, Any], path: str, seen: tuple[int, ...]) -> SegmentCondition:
    segment_id = raw.get("segment")
    if isinstance(segment_id, bool) or not isinstance(segment_id, int):
        raise InvalidCondition(path, "a segment condition needs the other segment's id")
    if raw.get("operator") not in ("in", "not_in"):
        raise InvalidCondition(path, 'operator must be "in" or "not_in"')
    if segment_id in seen:
        raise InvalidCondition(path, f"segment {segment_id} refers back to itself (a cycle)")
    other = Segment.objects.filter(pk=segment_id).values_list("conditions", flat=True).first()
    if other is None:
        raise InvalidCondition(path, f"no segment {segment_id}")
    try:
        tree = _as_group(_parse(other, "", 0, [], (*seen, segment_id)))
    except InvalidCondition as inner:
        raise InvalidCondition(path, f"segment {segment_id}: {inner}") from inner
    return SegmentCondition(segment_id=segment_id, operator=raw["operator"], tree=tree)


def _as_group(node: Node) -> Group:
    return node if isinstance(node, Group) else Group(operator="and", children=(node,))


def _parse(raw: Any, path: str, depth: int, leaves: list[int], seen: tuple[int, ...] = ()) -> Node:
    if not isinstance(raw, dict):
        raise InvalidCondition(path, "each node must be an object")
    kind = raw.get("type")
    if kind == "group":
        if depth >= MAX_DEPTH:
            raise InvalidCondition(path, f"groups nest at most {MAX_DEPTH} deep")
        operator = raw.get("operator")
        if operator not in ("and", "or"):
            raise InvalidCondition(path, 'a group\'s operator must be "and" or "or"')
        children = raw.get("children")
        if not isinstance(children, list) or not children:
            raise InvalidCondition(path, "a group needs at least one condition")
        parsed = tuple(
            _parse(child, f"{path}.children[{i}]" if path else f"children[{i}]", depth + 1, leaves, seen)
            for i, child in enumerate(children)
        )
        return Group(operator=operator, children=parsed, negate=bool(raw.get("negate", False)))
    leaves.append(1)
    if len(leaves) > MAX_LEAVES:
        raise InvalidCondition(path, f"a segment has at most {MAX_LEAVES} conditions")
    if kind == "event":
        return _parse_event(raw, path)
    if kind == "segment":
        return _parse_segment(raw, path, seen)
    if kind != "condition":
        raise InvalidCondition(path, 'type must be "group", "condition", "event" or "segment"')
    name = raw.get("property")
    spec = property_named(name) if isinstance(name, str) else None
    if spec is None:
        raise InvalidCondition(path, f"unknown property {name!r}")
    operator = raw.get("operator")
    if operator not in OPERATORS[spec.value_type]:
        allowed = ", ".join(sorted(OPERATORS[spec.value_type]))
        raise InvalidCondition(
            path, f"{operator!r} does not apply to {spec.key} ({spec.value_type}); use one of {allowed}"
        )
    value = check_value(spec.value_type, operator, raw.get("value"), path, spec.choices)
    return Condition(property=spec.key, operator=operator, value=value, spec=spec)


def parse_tree(raw: Any, *, segment_id: int | None = None) -> Group:
    """Validate and convert a JSON tree; a bare leaf is wrapped in an AND group.

    `segment_id` is the segment the tree belongs to, so a condition referring back to it is refused.
    """
    leaves: list[int] = []
    _refuse_nul(raw, "")
    return _as_group(_parse(raw, "", 0, leaves, (segment_id,) if segment_id is not None else ()))


def to_json(node: Node) -> dict[str, Any]:
    """The canonical JSON of a parsed tree (what is stored)."""
    if isinstance(node, Group):
        return {
            "type": "group",
            "operator": node.operator,
            "negate": node.negate,
            "children": [to_json(child) for child in node.children],
        }
    if isinstance(node, EventCondition):
        data: dict[str, Any] = {"type": "event", "event": node.event, "operator": node.operator, "count": node.count}
        if node.within_days is not None:
            data["within_days"] = node.within_days
        if node.between is not None:
            data["between"] = [node.between[0].isoformat(), node.between[1].isoformat()]
        if node.on_date is not None:
            data["date"] = node.on_date.isoformat()
        if node.where:
            data["where"] = [{"property": f.property, "operator": f.operator, "value": f.value} for f in node.where]
        return data
    if isinstance(node, SegmentCondition):
        return {"type": "segment", "segment": node.segment_id, "operator": node.operator}
    return {"type": "condition", "property": node.property, "operator": node.operator, "value": node.value}
