"""One compiler from a condition tree to a single filter on Customer — evaluated by the database, never by a
Python loop over customers. The same compiled leaves serve evaluation, preview and explain, so they cannot
disagree.

NULL semantics, spelled out: a missing value (NULL column, absent trait, a trait set to JSON null, no subscription)
never satisfies a positive operator (`equals`, `gt`, `contains`, `before`, ...); the negative operators
`not_equals`, `not_one_of` and `not_contains` DO match a missing value ("is not X" holds when nothing is known).
`is_set` is false for NULL, an absent trait, JSON null and the empty string. Subscription properties hold when at
least one of the customer's subscriptions satisfies them; a customer without subscriptions satisfies none of them
(the negative operators included: "has a subscription whose status is not canceled").

Values in JSON (custom properties, event properties) are typed: a value of another JSON type than the operator
needs never satisfies it — text is not a number for `gt`, "true" is not a boolean, a number is not text for
`contains` — and dates are instants (segments.typed_sql). Keys are data, bound as parameters, never lookups.
Every leaf compiles to a real condition: `is_set` on a property everyone has is ALWAYS, never an empty Q() (which
OR drops, NOT inverts to nothing and When() refuses).
"""

from __future__ import annotations

import math
import operator as operators
from datetime import date, datetime, timedelta
from functools import reduce
from typing import Any

from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    Exists,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Lower, StrIndex, Substr
from django.db.models.lookups import Exact, GreaterThanOrEqual, LessThanOrEqual
from django.utils import timezone

from audiences.models import Account, ComputedTraitValue, Customer, Event
from integrations.stripe.models import Discount, Subscription
from segments.catalogue import PropertySpec, property_named
from segments.conditions import Condition, EventCondition, EventFilter, Group, Node, SegmentCondition
from segments.regex_dialect import canonical
from segments.typed_sql import JSONKeyHolds, JSONTest, JSONTextHolds, fold
from segments.value_types import ValueType

LIVE_SUBSCRIPTION_STATUSES = ("trialing", "active", "past_due", "unpaid", "paused")
"""A subscription in these statuses is still running: its discounts still apply."""

# A condition every row satisfies, and one none does: what `is_set` / `is_not_set` compile to on a property every
# customer (or subscription, or trial) has a value for.
ALWAYS = Q(pk__isnull=False)
NEVER = Q(pk__isnull=True)


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.get_current_timezone())


Bounds = tuple[tuple[str, datetime], ...]


def date_bounds(operator: str, value: Any, now: datetime) -> Bounds:
    """A date operator as comparisons of the instant with bounds; days start at midnight in the current time zone.
    Columns and JSON dates both use these, so they cannot drift apart."""
    if operator in ("before", "after", "on"):
        day = date.fromisoformat(value)
        start, end = _day_start(day), _day_start(day + timedelta(days=1))
        return {"before": (("<", start),), "after": ((">=", end),), "on": ((">=", start), ("<", end))}[operator]
    days = timedelta(days=int(value))
    if operator == "within_last_days":
        return ((">=", now - days), ("<=", now))
    if operator == "within_next_days":
        return ((">=", now), ("<=", now + days))
    return (("<", now - days),)  # more_than_days_ago


LOOKUP_OF = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte", "=": "exact"}
COMPARISON_OF = {"equals": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
TEXT_TEST_OF = {"contains": "contains", "starts_with": "startswith", "ends_with": "endswith"}


def _date_q(path: str, operator: str, value: Any, now: datetime) -> Q:
    """Date operators on a datetime column."""
    return Q(**{f"{path}__{LOOKUP_OF[op]}": moment for op, moment in date_bounds(operator, value, now)})


def _is_set(path: str, spec_type: ValueType) -> Q:
    present = Q(**{f"{path}__isnull": False})
    if spec_type == ValueType.STRING:
        present &= ~Q(**{path: ""})
    return present


def compare(path: str, value_type: ValueType, operator: str, value: Any, now: datetime, *, scale: int = 1) -> Q:
    """One operator on one database column (or path to one), with the NULL semantics of the module docstring."""
    missing = Q(**{f"{path}__isnull": True})
    if operator == "is_set":
        return _is_set(path, value_type)
    if operator == "is_not_set":
        return ~_is_set(path, value_type) | missing
    if operator in ("is_true", "is_false"):
        return Q(**{path: operator == "is_true"})
    if value_type == ValueType.DATE:
        return _date_q(path, operator, value, now)
    if value_type == ValueType.NUMBER:
        value = [_exact(v * scale) for v in value] if operator == "between" else _exact(value * scale)
    if operator == "equals":
        return Q(**{path: value})
    if operator == "not_equals":
        return ~Q(**{path: value}) | missing
    if operator == "one_of":
        return Q(**{f"{path}__in": value})
    if operator == "not_one_of":
        return ~Q(**{f"{path}__in": value}) | missing
    if operator in ("contains", "not_contains"):
        if value_type == ValueType.LIST:  # a list held as JSON text (a computed unique list): an element
            found = Q(JSONTextHolds(path, JSONTest("list_contains", fold(str(value)))))
        else:
            found = Q(**{f"{path}__folded_contains": str(value)})
        return found if operator == "contains" else ~found | missing
    if operator == "starts_with":
        return Q(**{f"{path}__folded_startswith": value})
    if operator == "ends_with":
        return Q(**{f"{path}__folded_endswith": value})
    if operator == "matches_regex":
        return Q(**{f"{path}__regex": canonical(value)})
    if operator == "between":
        low, high = value
        return Q(**{f"{path}__gte": low, f"{path}__lte": high})
    return Q(**{f"{path}__{operator}": value})  # gt, gte, lt, lte


INT64 = 2**63


def _exact(number: float) -> Any:
    """A number as a column comparison gets it: an int when whole (integer columns compare it as it is), else a
    float expression — given a float, Django's integer fields truncate it first (`quantity equals 3.5` matched 3)."""
    number = float(number)
    if number.is_integer() and -INT64 < number < INT64:
        return int(number)
    return Value(number, output_field=FloatField())


def json_test(value_type: ValueType, operator: str, value: Any, now: datetime) -> JSONTest:
    """The typed test a positive operator makes on a JSON value (segments.typed_sql)."""
    if operator == "is_set":
        return JSONTest("present")
    if operator in ("is_true", "is_false"):
        return JSONTest("boolean", operator == "is_true")
    if value_type == ValueType.DATE:
        return JSONTest("instant", date_bounds(operator, value, now))
    if value_type == ValueType.NUMBER:
        if operator == "between":
            return JSONTest("number", ((">=", value[0]), ("<=", value[1])))
        return JSONTest("number", ((COMPARISON_OF[operator], value),))
    if value_type == ValueType.LIST:
        return JSONTest("list_contains", fold(str(value)))
    if operator in ("equals", "one_of"):
        # text equals text, a number equals a number: the value's own JSON type decides
        values = value if operator == "one_of" else [value]
        texts = tuple(v for v in values if isinstance(v, str))
        return JSONTest("scalar_in", (texts, tuple(float(v) for v in values if not isinstance(v, str))))
    if operator == "matches_regex":
        return JSONTest("text", ("regex", canonical(value)))
    return JSONTest("text", (TEXT_TEST_OF[operator], fold(str(value))))


def json_q(column: str, key: str, value_type: ValueType, operator: str, value: Any, now: datetime) -> Q:
    """One operator on the value under `key` of a JSON column of the filtered rows; negative operators are the
    complement of their positive form, so a missing or mistyped value matches them."""
    positive = POSITIVE_OF.get(operator, operator)
    held = Q(JSONKeyHolds(column, key, json_test(value_type, positive, value, now)))
    return ~held if positive != operator else held


def _trait_q(spec: PropertySpec, operator: str, value: Any, now: datetime) -> Q:
    """A custom property: the customer's trait, or the trait of the customer's account (none without one)."""
    if not spec.on_account:
        return json_q(spec.path, spec.json_key, spec.value_type, operator, value, now)
    positive = POSITIVE_OF.get(operator, operator)
    accounts = Account.objects.filter(pk=OuterRef("account_id"))
    held = Q(Exists(accounts.filter(json_q(spec.path, spec.json_key, spec.value_type, positive, value, now))))
    return ~held if positive != operator else held


# Yes/no subscription properties computed from the row rather than stored.
SUBSCRIPTION_PREDICATES: dict[str, Q] = {
    "subscription.is_free_trial": Q(status=Subscription.Status.TRIALING),
    "subscription.will_renew": Q(
        status__in=[Subscription.Status.ACTIVE, Subscription.Status.TRIALING, Subscription.Status.PAST_DUE],
        cancel_at_period_end=False,
    ),
    "subscription.is_past_due": Q(status=Subscription.Status.PAST_DUE),
}


def _predicate_q(key: str, operator: str) -> Q:
    predicate = SUBSCRIPTION_PREDICATES[key]
    return {"is_true": predicate, "is_false": ~predicate, "is_set": ALWAYS, "is_not_set": NEVER}[operator]


MAX_DAY_COUNT = 1_000_000  # a day count compared with more (or less) than this compares with this


def _whole_days(operator: str, value: Any) -> tuple[int | None, int | None]:
    """The whole day counts satisfying `days <operator> N`, as low ≤ days ≤ high (None: unbounded; empty when
    low > high, e.g. "equals 2.5")."""
    if operator == "between":
        return math.ceil(value[0]), math.floor(value[1])
    return {
        "gt": (math.floor(value) + 1, None),
        "gte": (math.ceil(value), None),
        "lt": (None, math.ceil(value) - 1),
        "lte": (None, math.floor(value)),
        "equals": (math.ceil(value), math.floor(value)),
    }[operator]


def _days_from(now: datetime, days: int) -> datetime:
    return now + timedelta(days=max(-MAX_DAY_COUNT, min(MAX_DAY_COUNT, days)))


def days_q(path: str, operator: str, value: Any, now: datetime, *, since: bool) -> Q:
    """Whole days since (`since`) or until the timestamp at `path` — whole days elapsed, rounded down, as
    `timedelta.days` counts them — compared with N, as a range on the timestamp itself (so its index serves)."""
    if operator in ("is_set", "is_not_set"):
        return Q(**{f"{path}__isnull": operator == "is_not_set"})
    if operator == "not_equals":
        return ~days_q(path, "equals", value, now, since=since)
    low, high = _whole_days(operator, value)
    bounds: dict[str, datetime] = {}
    if since:  # days ≥ low ⟺ at ≤ now - low; days ≤ high ⟺ at > now - (high + 1)
        if low is not None:
            bounds[f"{path}__lte"] = _days_from(now, -low)
        if high is not None:
            bounds[f"{path}__gt"] = _days_from(now, -(high + 1))
    else:  # days ≥ low ⟺ at ≥ now + low; days ≤ high ⟺ at < now + (high + 1)
        if low is not None:
            bounds[f"{path}__gte"] = _days_from(now, low)
        if high is not None:
            bounds[f"{path}__lt"] = _days_from(now, high + 1)
    return Q(**bounds)


POSITIVE_OF = {"not_equals": "equals", "not_one_of": "one_of", "not_contains": "contains", "is_not_set": "is_set"}


def _empty_holds(spec: PropertySpec, operator: str, value: Any) -> bool:
    """Whether a computed trait's empty value (0, false, an empty list; None: no value) satisfies a positive
    operator — the case of a customer without a stored value, decided when compiling."""
    empty = spec.empty
    if empty is None:
        return False
    if operator == "is_set":
        return True
    if isinstance(empty, bool):
        return operator == ("is_false" if empty is False else "is_true")
    if isinstance(empty, list):
        return False  # contains: an empty list contains nothing
    scaled = value * spec.scale if isinstance(value, int | float) else value
    checks: dict[str, Any] = {
        "equals": lambda: empty == scaled,
        "gt": lambda: empty > scaled,
        "gte": lambda: empty >= scaled,
        "lt": lambda: empty < scaled,
        "lte": lambda: empty <= scaled,
        "between": lambda: value[0] * spec.scale <= empty <= value[1] * spec.scale,
        "one_of": lambda: empty in value,
    }
    return bool(checks[operator]()) if operator in checks else False


def _computed_q(spec: PropertySpec, operator: str, value: Any, now: datetime) -> Q:
    """A computed trait leaf: EXISTS a stored value satisfying the (positive form of the) operator, or no stored
    value when the trait's empty value satisfies it; negative operators are the negation, so a missing value
    matches them as everywhere else."""

    positive = POSITIVE_OF.get(operator, operator)
    if spec.derived in ("age_days", "days_until"):
        held = days_q(spec.path, positive, value, now, since=spec.derived == "age_days")
    else:
        held = compare(spec.path, spec.value_type, positive, value, now, scale=spec.scale)
    values = ComputedTraitValue.objects.filter(trait_id=spec.computed_trait_id, customer=OuterRef("pk"))
    q = Q(Exists(values.filter(held)))
    if _empty_holds(spec, positive, value):
        q |= ~Q(Exists(values))
    return ~q if positive != operator else q


def _active_coupon_q(spec: PropertySpec, operator: str, value: Any, now: datetime) -> Q:
    """A coupon discounting the customer now: the coupon of a live subscription's discount, or of a customer-wide
    Stripe discount that has not ended; negative operators are the negation, so a customer without an active
    coupon matches them."""
    positive = POSITIVE_OF.get(operator, operator)
    held = ~Q(coupon_id="") if positive == "is_set" else compare(spec.path, spec.value_type, positive, value, now)
    by_subscription = coupon_subscriptions().filter(held, customer=OuterRef("pk"))
    by_discount = running_discounts(now).filter(held, stripe_customer_id=OuterRef("stripe_customer_id"))
    q = Q(Exists(by_subscription)) | Q(Exists(by_discount))
    return ~q if positive != operator else q


def coupon_subscriptions() -> QuerySet[Subscription]:
    """Live subscriptions that carry a valued coupon (`coupon_id`, the first of their discounts)."""
    return Subscription.objects.filter(status__in=LIVE_SUBSCRIPTION_STATUSES).exclude(coupon_id="")


def running_discounts(now: datetime) -> QuerySet[Discount]:
    """Stripe discounts still running whose coupon is known: customer-wide ones, and every discount of a live
    subscription (its second discount, too)."""
    live = Subscription.objects.filter(
        stripe_subscription_id=OuterRef("stripe_subscription_id"), status__in=LIVE_SUBSCRIPTION_STATUSES
    )
    return (
        Discount.objects.filter(removed_at=None)
        .filter(Q(end__isnull=True) | Q(end__gt=now))
        .filter(Q(stripe_subscription_id="") | Q(Exists(live)))
        .exclude(coupon_id="")
    )


ACTIVE_MEMBER_DAYS = 7


def _account_members_q(spec: PropertySpec, operator: str, value: Any, now: datetime) -> Q:
    """How many customers share the customer's account (0 without one), all or those seen in the last
    ACTIVE_MEMBER_DAYS days, compared with N: a correlated COUNT, never NULL."""
    members = Customer.objects.filter(account_id=OuterRef("account_id"))
    if spec.derived == "account_active_members":
        members = members.filter(last_seen_at__gte=now - timedelta(days=ACTIVE_MEMBER_DAYS))
    counted = members.order_by().values("account_id").annotate(total=Count("id")).values("total")
    count = Coalesce(Subquery(counted), Value(0))
    if operator in ("is_set", "is_not_set"):
        return Q(account__isnull=operator == "is_not_set")
    this_customer = Customer.objects.filter(pk=OuterRef("pk")).annotate(members=count)
    held = compare("members", ValueType.NUMBER, POSITIVE_OF.get(operator, operator), value, now)
    q = Q(Exists(this_customer.filter(held)))
    return ~q if operator in POSITIVE_OF else q


def email_domain(column: str = "email") -> Case:
    """The domain of the email in `column`: the part after the @, lowercased; NULL without an @."""
    after = Substr(column, StrIndex(column, Value("@")) + 1)
    return Case(When(**{f"{column}__contains": "@"}, then=Lower(after)), default=Value(None), output_field=CharField())


def _email_domain_q(spec: PropertySpec, operator: str, value: Any, now: datetime) -> Q:
    """customer.email_domain: the (positive form of the) operator on the email's domain, as an EXISTS on the
    customer's own row; negative operators are its negation, so a customer without an email matches them."""
    positive = POSITIVE_OF.get(operator, operator)
    this_customer = Customer.objects.filter(pk=OuterRef("pk")).annotate(domain=email_domain(spec.path))
    q = Q(Exists(this_customer.filter(compare("domain", spec.value_type, positive, value, now))))
    return ~q if positive != operator else q


def _condition_q(node: Condition, now: datetime) -> Q:
    spec: PropertySpec | None = node.spec or property_named(node.property)
    if spec is None:
        raise ValueError(f"unknown property {node.property!r}")  # parse_tree has already refused it
    if spec.compile is not None:  # registered by an app above (segments.catalogue.register_properties)
        return spec.compile(spec, node.operator, node.value, now)
    if spec.derived in ("account_members", "account_active_members"):
        return _account_members_q(spec, node.operator, node.value, now)
    if spec.derived == "email_domain":
        return _email_domain_q(spec, node.operator, node.value, now)
    if spec.computed_trait_id is not None:
        return _computed_q(spec, node.operator, node.value, now)
    if spec.derived == "active_coupon":
        return _active_coupon_q(spec, node.operator, node.value, now)
    if spec.is_json:
        return _trait_q(spec, node.operator, node.value, now)
    if spec.derived == "predicate":
        q = _predicate_q(spec.key, node.operator)
    elif spec.derived == "age_days":
        q = days_q(spec.path, node.operator, node.value, now, since=True)
    else:
        q = compare(spec.path, spec.value_type, node.operator, node.value, now, scale=spec.scale)
    if spec.on_subscription:
        return Q(Exists(Subscription.objects.filter(q, customer=OuterRef("pk"))))
    return q


def event_filter_q(item: EventFilter, now: datetime) -> Q:
    """One filter on the properties of events: the property is a key of the event's JSON, compared as text (or as
    a number when the filter's value is one), typed as everywhere in JSON."""
    return json_q("properties", item.property, ValueType.STRING, item.operator, item.value, now)


def events_matching(node: EventCondition, now: datetime) -> QuerySet[Event]:
    """The events an event condition looks at, every customer's: its name, its window (`within_days` up to now,
    or the days `between`), its property filters. Counting and first/last both read these."""
    events = Event.objects.filter(name=node.event)
    if node.within_days is not None:
        events = events.filter(timestamp__gte=now - timedelta(days=node.within_days), timestamp__lte=now)
    if node.between is not None:
        events = events.filter(
            timestamp__gte=_day_start(node.between[0]), timestamp__lt=_day_start(node.between[1] + timedelta(days=1))
        )
    for item in node.where:
        events = events.filter(event_filter_q(item, now))
    return events


def event_count_expression(node: EventCondition, now: datetime) -> Any:
    """How many matching events each customer performed (0 when none): a correlated COUNT subquery."""
    events = events_matching(node, now).filter(customer=OuterRef("pk"))
    counted = events.order_by().values("customer").annotate(total=Count("id")).values("total")
    return Coalesce(Subquery(counted), Value(0))


def _event_date_q(node: EventCondition, now: datetime) -> Q:
    """First/last performed before/after a day — among the events in the condition's window, when it has one —
    as EXISTS tests (true or false, never NULL)."""
    assert node.on_date is not None
    day_start, next_day = _day_start(node.on_date), _day_start(node.on_date + timedelta(days=1))
    events = events_matching(node, now).filter(customer=OuterRef("pk"))
    performed = Q(Exists(events))
    if node.operator == "first_before":
        return Q(Exists(events.filter(timestamp__lt=day_start)))
    if node.operator == "first_after":
        return performed & ~Q(Exists(events.filter(timestamp__lt=next_day)))
    if node.operator == "last_before":
        return performed & ~Q(Exists(events.filter(timestamp__gte=day_start)))
    return Q(Exists(events.filter(timestamp__gte=next_day)))  # last_after


def _event_q(node: EventCondition, now: datetime) -> Q:
    if node.on_date is not None:
        return _event_date_q(node, now)
    count = event_count_expression(node, now)
    if node.operator == "not_performed":
        return Q(Exact(count, 0))
    if node.operator == "at_least":
        return Q(GreaterThanOrEqual(count, node.count))
    if node.operator == "at_most":
        return Q(LessThanOrEqual(count, node.count))
    return Q(Exact(count, node.count))


def _two_valued(q: Q) -> Q:
    """A filter that is true or false, never NULL (NULL counts as false)."""
    return Q(Exact(Case(When(q, then=Value(True)), default=Value(False), output_field=BooleanField()), True))


def compile_node(node: Node, now: datetime) -> Q:
    """A node (group or leaf) as a filter on Customer."""
    if isinstance(node, Condition):
        return _condition_q(node, now)
    if isinstance(node, EventCondition):
        return _event_q(node, now)
    if isinstance(node, SegmentCondition):
        if node.tree is None:
            raise ValueError("segment condition not resolved; parse the tree with parse_tree")
        inside = Q(pk__in=Customer.objects.filter(compile_node(node.tree, now)).values("pk"))
        return inside if node.operator == "in" else ~inside
    combine = operators.and_ if node.operator == "and" else operators.or_
    combined = reduce(combine, (compile_node(child, now) for child in node.children))
    # NOT of a three-valued result keeps NULL (a missing account's name, say) and drops the customer, where the
    # leaves, each held or not, say NOT should hold: the negated group is made two-valued first.
    return ~_two_valued(combined) if node.negate else combined


def compile_tree(tree: Group, now: datetime | None = None) -> Q:
    """The whole tree as one filter on Customer."""
    return compile_node(tree, now or timezone.now())
