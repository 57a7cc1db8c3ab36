"""A plain-Python specification of the condition language, to check the compiled SQL against (test_differential).

It reads a condition tree as JSON and a customer as plain Python values (no database), and says whether the
customer matches, following docs/segments.md — written independently of segments.compiler and segments.typed_sql,
so the two only agree when both follow the rules:

- a missing value never satisfies a positive operator; negative operators (not_equals, not_one_of, not_contains,
  is_not_set) are exactly "the positive one does not hold";
- is_set: not missing, not JSON null, not the empty text;
- text operators are case-insensitive for A–Z only; equals / one_of compare text exactly;
- JSON values are typed: a number operator holds only for a JSON number, a boolean one for a JSON boolean, a text
  one for a JSON string, a date one for ISO 8601 text (UTC without an offset), a list one for an array;
  `equals` on a text property compares text with text and a number with a number;
- regular expressions: `\\d` is 0–9, `\\w` ASCII word characters, `.` anything but a newline, `$` the very end;
- day counts are whole days elapsed, rounded down; days start at midnight in the current time zone;
- subscription properties hold when one of the customer's subscriptions satisfies them (negatives included);
- an event window narrows the events counted and the first/last considered.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

from django.utils import timezone

NEGATIVE = {"not_equals": "equals", "not_one_of": "one_of", "not_contains": "contains", "is_not_set": "is_set"}
ACTIVE_MEMBER_DAYS = 7


@dataclass
class Plan:
    price_id: str
    name: str
    interval: str
    interval_count: int
    product_id: str
    product_name: str


@dataclass
class Subscription:
    status: str
    plan: Plan
    quantity: int
    mrr_cents: int | None  # NULL: in a currency without a rate
    started_at: datetime
    trial_end: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    coupon_id: str
    discount_percent: Decimal | None


@dataclass
class Account:
    id: int
    name: str
    domain: str
    traits: dict[str, Any]
    meeting_logged: bool = False


@dataclass
class Event:
    name: str
    timestamp: datetime
    properties: dict[str, Any]


@dataclass
class Trial:
    model: str
    stage: str
    started_at: datetime
    ends_at: datetime
    use_case: str
    fit_score: int


@dataclass
class Customer:
    id: int
    user_id: str | None
    email: str
    name: str
    is_test: bool
    subscriber_status: str
    mrr_cents: int | None  # NULL: in a currency without a rate
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    traits: dict[str, Any]
    account: Account | None = None
    subscriptions: list[Subscription] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    trial: Trial | None = None
    computed: dict[str, Any] = field(default_factory=dict)  # computed trait key → stored value (absent: none)
    meeting_logged: bool = False


@dataclass
class World:
    customers: list[Customer]
    trait_types: dict[str, str]  # declared customer custom properties: key → type
    account_trait_types: dict[str, str]
    computed_kinds: dict[str, str]  # computed trait key → kind
    segments: dict[int, dict[str, Any]] = field(default_factory=dict)  # stored trees by segment id


# --- values -----------------------------------------------------------------------------------------------


def fold(text: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def regex_search(pattern: str, text: str) -> bool:
    """The documented meaning of a pattern (the test's patterns use `$` only as their last character)."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + "\\Z"
    return re.search(pattern, text, re.ASCII) is not None


_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,6}))?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?"
)


def instant(text: Any) -> datetime | None:
    """An ISO 8601 date or date-time (years 1000–8999, offsets up to ±15:59, UTC without one), else None."""
    if not isinstance(text, str):
        return None
    found = _ISO.fullmatch(text)
    if found is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = found.groups()
    if not 1000 <= int(year) <= 8999:
        return None
    zone: dt_timezone = UTC
    if offset and offset != "Z":
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 15 or minutes > 59:
            return None
        sign = 1 if offset[0] == "+" else -1
        zone = dt_timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
            int((fraction or "").ljust(6, "0")), tzinfo=zone,
        )  # fmt: skip
    except ValueError:
        return None


def is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.get_current_timezone())


def in_date_range(moment: datetime, operator: str, value: Any, now: datetime) -> bool:
    if operator in ("before", "after", "on"):
        day = date.fromisoformat(value)
        start, end = day_start(day), day_start(day + timedelta(days=1))
        return {"before": moment < start, "after": moment >= end, "on": start <= moment < end}[operator]
    days = timedelta(days=value)
    if operator == "within_last_days":
        return now - days <= moment <= now
    if operator == "within_next_days":
        return now <= moment <= now + days
    return moment < now - days  # more_than_days_ago


def compare_number(actual: float, operator: str, value: Any, scale: int = 1) -> bool:
    if operator == "between":
        return bool(value[0] * scale <= actual <= value[1] * scale)
    wanted = value * scale
    return bool(
        {
            "equals": actual == wanted,
            "gt": actual > wanted,
            "gte": actual >= wanted,
            "lt": actual < wanted,
            "lte": actual <= wanted,
        }[operator]
    )


def text_holds(actual: str, operator: str, value: Any) -> bool:
    """A positive text operator on a text that is there."""
    if operator == "equals":
        return actual == str(value)
    if operator == "one_of":
        return actual in {str(v) for v in value}
    if operator == "contains":
        return fold(str(value)) in fold(actual)
    if operator == "starts_with":
        return fold(actual).startswith(fold(str(value)))
    if operator == "ends_with":
        return fold(actual).endswith(fold(str(value)))
    if operator == "matches_regex":
        return regex_search(value, actual)
    raise AssertionError(operator)


def column_holds(actual: Any, value_type: str, operator: str, value: Any, now: datetime, scale: int = 1) -> bool:
    """A positive operator on a database column (None: NULL)."""
    if operator == "is_set":
        return actual is not None and actual != ""
    if actual is None:
        return False
    if operator in ("is_true", "is_false"):
        return actual is (operator == "is_true")
    if value_type == "date":
        return in_date_range(actual, operator, value, now)
    if value_type == "number":
        return compare_number(float(actual), operator, value, scale)
    return text_holds(actual, operator, value)


def whole_days(operator: str, days: int, value: Any) -> bool:
    return compare_number(days, operator, value)


def json_holds(obj: Any, key: str, value_type: str, operator: str, value: Any, now: datetime) -> bool:
    """A positive operator on the value under `key` of a JSON object."""
    present = isinstance(obj, dict) and key in obj
    actual: Any = obj[key] if present else None
    if operator == "is_set":
        return present and actual is not None and actual != ""
    if operator in ("is_true", "is_false"):
        return isinstance(actual, bool) and actual is (operator == "is_true")
    if value_type == "date":
        moment = instant(actual)
        return moment is not None and in_date_range(moment, operator, value, now)
    if value_type == "number":
        return is_number(actual) and compare_number(float(actual), operator, value)
    if value_type == "list":
        wanted = fold(str(value))
        return isinstance(actual, list) and any(isinstance(e, str) and fold(e) == wanted for e in actual)
    if operator in ("equals", "one_of"):
        candidates = value if operator == "one_of" else [value]
        if isinstance(actual, str):
            return actual in [c for c in candidates if isinstance(c, str)]
        return is_number(actual) and float(actual) in [float(c) for c in candidates if not isinstance(c, str)]
    return isinstance(actual, str) and text_holds(actual, operator, value)


# --- properties ---------------------------------------------------------------------------------------------

COLUMNS: dict[str, tuple[str, str, int]] = {  # property → (attribute, type, scale)
    "customer.email": ("email", "string", 1),
    "customer.name": ("name", "string", 1),
    "customer.user_id": ("user_id", "string", 1),
    "customer.is_test": ("is_test", "boolean", 1),
    "customer.first_seen": ("first_seen_at", "date", 1),
    "customer.last_seen": ("last_seen_at", "date", 1),
    "subscriber.status": ("subscriber_status", "string", 1),
    "subscriber.mrr": ("mrr_cents", "number", 100),
}
ACCOUNT_COLUMNS = {"account.name": "name", "account.domain": "domain"}
SUBSCRIPTION_COLUMNS: dict[str, tuple[Any, str, int]] = {
    "subscription.status": (lambda s: s.status, "string", 1),
    "subscription.mrr": (lambda s: s.mrr_cents, "number", 100),
    "subscription.quantity": (lambda s: s.quantity, "number", 1),
    "subscription.started": (lambda s: s.started_at, "date", 1),
    "subscription.trial_end": (lambda s: s.trial_end, "date", 1),
    "subscription.next_billing_date": (lambda s: s.current_period_end, "date", 1),
    "subscription.cancel_at_period_end": (lambda s: s.cancel_at_period_end, "boolean", 1),
    "subscription.coupon_id": (lambda s: s.coupon_id, "string", 1),
    "subscription.discount_percent": (lambda s: s.discount_percent, "number", 1),
    "plan.id": (lambda s: s.plan.price_id, "string", 1),
    "plan.name": (lambda s: s.plan.name, "string", 1),
    "plan.interval": (lambda s: s.plan.interval, "string", 1),
    "plan.interval_count": (lambda s: s.plan.interval_count, "number", 1),
    "product.name": (lambda s: s.plan.product_name, "string", 1),
}
PREDICATES: dict[str, Callable[[Subscription], bool]] = {
    "subscription.is_free_trial": lambda s: s.status == "trialing",
    "subscription.will_renew": lambda s: s.status in ("active", "trialing", "past_due") and not s.cancel_at_period_end,
    "subscription.is_past_due": lambda s: s.status == "past_due",
}
COMPUTED_TYPES = {"count": "number", "last_value": "string", "unique_list": "list", "ever": "boolean"}
EMPTY = {"count": 0, "unique_list": [], "ever": False}


def _positive(prop: str, operator: str, value: Any, customer: Customer, world: World, now: datetime) -> bool:
    if prop in COLUMNS:
        attribute, value_type, scale = COLUMNS[prop]
        return column_holds(getattr(customer, attribute), value_type, operator, value, now, scale)
    if prop in ACCOUNT_COLUMNS:
        actual = getattr(customer.account, ACCOUNT_COLUMNS[prop]) if customer.account else None
        return column_holds(actual, "string", operator, value, now)
    if prop in ("account.members", "account.active_members"):
        if operator == "is_set":
            return customer.account is not None
        mates = [c for c in world.customers if customer.account and c.account is customer.account]
        if prop == "account.active_members":
            since = now - timedelta(days=ACTIVE_MEMBER_DAYS)
            mates = [c for c in mates if c.last_seen_at is not None and c.last_seen_at >= since]
        return compare_number(len(mates), operator, value)
    if prop == "sales.meeting_logged":
        logged = customer.meeting_logged or (customer.account is not None and customer.account.meeting_logged)
        return {"is_true": logged, "is_false": not logged, "is_set": True}[operator]
    if prop.startswith("trait."):
        key = prop.removeprefix("trait.")
        return json_holds(customer.traits, key, world.trait_types[key], operator, value, now)
    if prop.startswith("account.trait."):
        key = prop.removeprefix("account.trait.")
        traits = customer.account.traits if customer.account else None
        return json_holds(traits, key, world.account_trait_types[key], operator, value, now)
    if prop.startswith("computed."):
        return _computed(prop.removeprefix("computed."), operator, value, customer, world, now)
    if prop.startswith(("trial.", "score.")):
        return _trial(prop, operator, value, customer.trial, now)
    raise AssertionError(f"the reference does not know {prop}")


def _computed(key: str, operator: str, value: Any, customer: Customer, world: World, now: datetime) -> bool:
    kind = world.computed_kinds[key]
    actual = customer.computed.get(key, EMPTY.get(kind))
    if kind == "days_since_last":
        if operator == "is_set":
            return actual is not None
        return actual is not None and whole_days(operator, (now - actual).days, value)
    value_type = COMPUTED_TYPES[kind]
    if value_type == "list":
        if operator == "is_set":
            return actual is not None
        wanted = fold(str(value))
        return any(fold(element) == wanted for element in actual)
    return column_holds(actual, value_type, operator, value, now)


def _trial(prop: str, operator: str, value: Any, trial: Trial | None, now: datetime) -> bool:
    if trial is None:
        return False
    if prop == "trial.opt_in":
        return {"is_true": trial.model == "opt_in", "is_false": trial.model != "opt_in", "is_set": True}[operator]
    if prop == "trial.days_left":
        return operator == "is_set" or whole_days(operator, (trial.ends_at - now).days, value)
    attribute, value_type = {
        "trial.stage": ("stage", "string"),
        "trial.use_case": ("use_case", "string"),
        "trial.started": ("started_at", "date"),
        "score.fit": ("fit_score", "number"),
    }[prop]
    return column_holds(getattr(trial, attribute), value_type, operator, value, now)


def _subscriptions(prop: str, operator: str, value: Any, customer: Customer, now: datetime) -> bool:
    """Subscription properties: one subscription satisfying the operator — positive or negative — suffices."""
    positive = NEGATIVE.get(operator, operator)

    def one(subscription: Subscription) -> bool:
        if prop in PREDICATES:
            truth = PREDICATES[prop](subscription)
            return {"is_true": truth, "is_false": not truth, "is_set": True}[positive]
        if prop == "subscription.duration_days":
            return positive == "is_set" or whole_days(positive, (now - subscription.started_at).days, value)
        getter, value_type, scale = SUBSCRIPTION_COLUMNS[prop]
        return column_holds(getter(subscription), value_type, positive, value, now, scale)

    if positive != operator:
        return any(not one(s) for s in customer.subscriptions)
    return any(one(s) for s in customer.subscriptions)


def condition_holds(node: dict[str, Any], customer: Customer, world: World, now: datetime) -> bool:
    prop, operator, value = node["property"], node["operator"], node.get("value")
    if prop.startswith(("subscription.", "plan.", "product.")):
        return _subscriptions(prop, operator, value, customer, now)
    positive = NEGATIVE.get(operator, operator)
    held = _positive(prop, positive, value, customer, world, now)
    return not held if positive != operator else held


def _in_window(event: Event, node: dict[str, Any], now: datetime) -> bool:
    if node.get("within_days") is not None:
        return now - timedelta(days=node["within_days"]) <= event.timestamp <= now
    if node.get("between") is not None:
        first, last = (date.fromisoformat(d) for d in node["between"])
        return day_start(first) <= event.timestamp < day_start(last + timedelta(days=1))
    return True


def _filter_holds(item: dict[str, Any], event: Event, now: datetime) -> bool:
    operator = item["operator"]
    positive = NEGATIVE.get(operator, operator)
    held = json_holds(event.properties, item["property"], "string", positive, item.get("value"), now)
    return not held if positive != operator else held


def event_holds(node: dict[str, Any], customer: Customer, now: datetime) -> bool:
    events = [
        e
        for e in customer.events
        if e.name == node["event"]
        and _in_window(e, node, now)
        and all(_filter_holds(item, e, now) for item in node.get("where", []))
    ]
    operator = node["operator"]
    if operator in ("first_before", "first_after", "last_before", "last_after"):
        if not events:
            return False
        day = date.fromisoformat(node["date"])
        start, end = day_start(day), day_start(day + timedelta(days=1))
        first: datetime = min(e.timestamp for e in events)
        last: datetime = max(e.timestamp for e in events)
        return {
            "first_before": first < start,
            "first_after": first >= end,
            "last_before": last < start,
            "last_after": last >= end,
        }[operator]
    count: int = node.get("count", 1)
    return {
        "at_least": len(events) >= count,
        "at_most": len(events) <= count,
        "exactly": len(events) == count,
        "not_performed": not events,
    }[operator]


def holds(node: dict[str, Any], customer: Customer, world: World, now: datetime) -> bool:
    """Whether the customer matches the tree (or leaf)."""
    kind = node["type"]
    if kind == "group":
        values = [holds(child, customer, world, now) for child in node["children"]]
        result = all(values) if node["operator"] == "and" else any(values)
        return not result if node.get("negate") else result
    if kind == "segment":
        inside = holds(world.segments[node["segment"]], customer, world, now)
        return inside if node["operator"] == "in" else not inside
    if kind == "event":
        return event_holds(node, customer, now)
    return condition_holds(node, customer, world, now)
