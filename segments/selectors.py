"""Reads on segments: preview of an unsaved tree, members, and explain for one customer."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Trunc
from django.utils import timezone

from audiences.models import ComputedTraitValue, Customer
from segments.catalogue import PropertySpec, property_named
from segments.compiler import (
    ACTIVE_MEMBER_DAYS,
    compile_node,
    coupon_subscriptions,
    event_count_expression,
    events_matching,
    running_discounts,
)
from segments.conditions import (
    Condition,
    EventCondition,
    Group,
    InvalidCondition,
    Node,
    SegmentCondition,
    parse_tree,
    to_json,
)
from segments.models import Segment, SegmentMembership, SegmentMembershipChange, SegmentVersion

PREVIEW_SAMPLE = 20


def segment_preview(conditions: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """Count and a sample of who matches a (draft) tree, without writing anything."""
    tree = parse_tree(conditions)
    matching = Customer.objects.filter(compile_node(tree, now or timezone.now()))
    sample = list(matching.order_by("-id").values("id", "user_id", "email", "name")[:PREVIEW_SAMPLE])
    return {"count": matching.count(), "sample": sample, "conditions": to_json(tree)}


def segment_members(segment: Segment) -> QuerySet[Customer]:
    """The materialised members, newest first."""
    return Customer.objects.filter(segment_memberships__segment=segment).order_by("-id")


@dataclass
class LeafExplanation:
    """One leaf for one customer: what it asked, the customer's actual value, and whether it held."""

    path: str
    description: str
    actual: Any
    held: bool


def _actual(node: Condition | EventCondition | SegmentCondition, customer: Customer, now: datetime) -> Any:
    if isinstance(node, SegmentCondition):
        return None  # whether it held says it all
    if isinstance(node, EventCondition):
        if node.on_date is not None:
            events = events_matching(node, now).filter(customer=customer)
            moment = (
                events.order_by("timestamp") if node.operator.startswith("first") else events.order_by("-timestamp")
            )
            first_or_last = moment.values_list("timestamp", flat=True).first()
            return first_or_last.isoformat() if first_or_last else None
        annotated = Customer.objects.filter(pk=customer.pk).annotate(total=event_count_expression(node, now))
        return annotated.values_list("total", flat=True).first()
    spec = node.spec or property_named(node.property)
    if spec is None:
        return None
    if spec.compile is not None:  # registered by an app above (segments.catalogue.register_properties)
        return spec.actual(spec, customer, now) if spec.actual is not None else None
    if spec.computed_trait_id is not None:
        return _computed_actual(spec, customer, now)
    if spec.derived == "active_coupon":
        return _active_coupons(customer, now)
    if spec.derived in ("account_members", "account_active_members"):
        return _account_members_actual(spec, customer, now)
    if spec.is_json:
        holder = customer.account if spec.on_account else customer
        traits = holder.traits if holder is not None else None
        return traits.get(spec.json_key) if isinstance(traits, dict) else None
    if spec.derived == "email_domain":
        return customer.email.rpartition("@")[2].lower() if "@" in customer.email else None
    if spec.derived == "predicate":
        return None  # computed from the subscription's status; whether it held says it all
    if spec.derived == "age_days":
        started = customer.subscriptions.values_list(spec.path, flat=True)
        return [(now - moment).days for moment in started if moment is not None]
    if spec.on_subscription:
        values = customer.subscriptions.values_list(spec.path, flat=True)
        return [v / spec.scale if spec.scale != 1 and v is not None else v for v in values]
    value: Any = customer
    for part in spec.path.split("__"):
        value = getattr(value, part, None) if value is not None else None
    return value / spec.scale if spec.scale != 1 and value is not None else value


def _account_members_actual(spec: PropertySpec, customer: Customer, now: datetime) -> Any:
    """The account's member counts, as the plays' conditions compare them."""
    if customer.account_id is None:
        return 0
    members = Customer.objects.filter(account_id=customer.account_id)
    if spec.derived == "account_active_members":
        members = members.filter(last_seen_at__gte=now - timedelta(days=ACTIVE_MEMBER_DAYS))
    return members.count()


def _active_coupons(customer: Customer, now: datetime) -> list[str]:
    """The coupons discounting the customer now, as subscriber.active_coupon_id compares them."""
    by_subscription = coupon_subscriptions().filter(customer=customer).values_list("coupon_id", flat=True)
    by_discount = running_discounts(now).filter(stripe_customer_id=customer.stripe_customer_id or "-")
    return sorted({*by_subscription, *by_discount.values_list("coupon_id", flat=True)})


def _computed_actual(spec: PropertySpec, customer: Customer, now: datetime) -> Any:
    """A computed trait's value as the condition compares it (days since / left for time-based kinds)."""

    row = ComputedTraitValue.objects.filter(trait_id=spec.computed_trait_id, customer=customer).first()
    if row is None:
        return spec.empty
    if spec.derived == "age_days" and row.date_value is not None:
        return (now - row.date_value).days
    if spec.derived == "days_until" and row.date_value is not None:
        return (row.date_value - now).days
    return row.value


def _describe(node: Condition | EventCondition | SegmentCondition) -> str:
    if isinstance(node, SegmentCondition):
        name = Segment.objects.filter(pk=node.segment_id).values_list("name", flat=True).first()
        return f"{'in' if node.operator == 'in' else 'not in'} segment “{name}”"
    if isinstance(node, EventCondition):
        window = f" in the last {node.within_days} days" if node.within_days is not None else ""
        if node.between:
            window = f" between {node.between[0]} and {node.between[1]}"
        if node.where:
            filters = [f"{f.property} {f.operator.replace('_', ' ')}" + _spaced(f.value) for f in node.where]
            window += " where " + " and ".join(filters)
        if node.operator == "not_performed":
            return f"did not perform {node.event}{window}"
        if node.on_date is not None:
            which, when = node.operator.split("_")
            return f"{which} performed {node.event}{window} {when} {node.on_date}"
        return f"performed {node.event} {node.operator.replace('_', ' ')} {node.count} times{window}"
    return f"{node.property} {node.operator.replace('_', ' ')}{_spaced(node.value)}"


def _spaced(value: Any) -> str:
    return "" if value is None else f" {value}"


def explain(conditions: Any, customer: Customer, *, now: datetime | None = None) -> dict[str, Any]:
    """Each leaf's actual value and whether it held, and the overall result, for one customer.

    Whether a leaf held is decided by the same compiled SQL that evaluation uses (filtered to this customer),
    so explain and membership cannot disagree; the actual value is read for display.
    """
    now = now or timezone.now()
    tree = parse_tree(conditions)
    leaves: list[LeafExplanation] = []

    def walk(node: Node, path: str) -> None:
        if isinstance(node, Group):
            for index, child in enumerate(node.children):
                walk(child, f"{path}.children[{index}]" if path else f"children[{index}]")
            return
        held = Customer.objects.filter(pk=customer.pk).filter(compile_node(node, now)).exists()
        leaves.append(LeafExplanation(path, _describe(node), _actual(node, customer, now), held))

    walk(tree, "")
    overall = Customer.objects.filter(pk=customer.pk).filter(compile_node(tree, now)).exists()
    return {"customer": customer.pk, "matches": overall, "leaves": [leaf.__dict__ for leaf in leaves]}


def describe_json(node: dict[str, Any]) -> str:
    """A stored leaf in words ("subscriber.mrr gte 100"), for pages that show a tree."""
    try:
        leaf = parse_tree(node).children[0]
    except InvalidCondition as invalid:
        return f"{node.get('property') or node.get('event')} — no longer valid: {invalid.message}"
    assert not isinstance(leaf, Group)
    return _describe(leaf)


def _tree_lines(node: dict[str, Any], depth: int = 0) -> list[str]:
    indent = "  " * depth
    if node.get("type") == "group":
        head = f"{indent}{'NOT ' if node.get('negate') else ''}{str(node.get('operator', 'and')).upper()} of:"
        return [head, *(line for child in node.get("children", []) for line in _tree_lines(child, depth + 1))]
    return [f"{indent}- {describe_json(node)}"]


def version_lines(version: SegmentVersion) -> list[str]:
    """A version as readable lines: name, description, tags and the tree."""
    return [
        f"name: {version.name}",
        f"description: {version.description}",
        f"tags: {', '.join(version.tags) or '—'}",
        *_tree_lines(version.conditions),
    ]


def segment_versions(segment: Segment) -> list[dict[str, Any]]:
    """Every version, newest first, each with the lines added and removed since the one before."""
    versions = list(segment.versions.select_related("author").order_by("number"))
    result = []
    previous: list[str] = []
    for version in versions:
        lines = version_lines(version)
        diff = [
            line
            for line in difflib.unified_diff(previous, lines, lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        ]
        result.append({"version": version, "diff": diff})
        previous = lines
    return list(reversed(result))


@dataclass
class DraftComparison:
    """A draft tree against the live membership: who matches, who would enter and who would exit."""

    count: int
    would_enter: int
    would_exit: int
    enter_sample: list[dict[str, Any]]
    exit_sample: list[dict[str, Any]]


def segment_draft_members(
    segment: Segment, conditions: Any, *, forced: Iterable[int] = (), now: datetime | None = None
) -> QuerySet[Customer]:
    """Who a draft holds: the customers its conditions match, plus the test customers forced into it."""
    tree = parse_tree(conditions, segment_id=segment.pk)
    return Customer.objects.filter(compile_node(tree, now or timezone.now()) | Q(pk__in=list(forced)))


def segment_draft_compare(
    segment: Segment, conditions: Any | None = None, *, forced: Iterable[int] | None = None, now: datetime | None = None
) -> DraftComparison:
    """Test mode: how a draft (given, or the saved one) would change the live segment — read-only."""
    if conditions is None:
        conditions = segment.draft_conditions or segment.conditions
    if forced is None:
        forced = segment.draft_test_customers.values_list("pk", flat=True)
    matching = segment_draft_members(segment, conditions, forced=forced, now=now)
    live = Customer.objects.filter(segment_memberships__segment=segment)
    entering = matching.exclude(pk__in=live.values("pk"))
    exiting = live.exclude(pk__in=matching.values("pk"))
    fields = ("id", "user_id", "email", "name")
    return DraftComparison(
        count=matching.count(),
        would_enter=entering.count(),
        would_exit=exiting.count(),
        enter_sample=list(entering.order_by("-id").values(*fields)[:PREVIEW_SAMPLE]),
        exit_sample=list(exiting.order_by("-id").values(*fields)[:PREVIEW_SAMPLE]),
    )


def customer_segments(customer_id: int) -> list[dict[str, Any]]:
    """Every segment with whether the customer is a member (as of its last evaluation), for the profile page."""
    member = Exists(SegmentMembership.objects.filter(segment=OuterRef("pk"), customer_id=customer_id))
    return [
        dict(row) for row in Segment.objects.annotate(member=member).order_by("name").values("pk", "name", "member")
    ]


# --- appended for the computed trait and audience pages ----------------------------------------------------


def _reads_property(node: Any, key: str) -> bool:
    if not isinstance(node, dict):
        return False
    if node.get("property") == key:
        return True
    return any(_reads_property(child, key) for child in node.get("children", []) or [])


def segments_reading_property(key: str) -> list[Segment]:
    """Segments whose conditions or saved draft compare on a property (e.g. `computed.sessions_7d`), found by
    walking the stored trees: segments number in the hundreds at most, and a JSON path search would be written
    differently for each database."""
    stored = Segment.objects.order_by("name").only("pk", "name", "conditions", "draft_conditions")
    return [s for s in stored if _reads_property(s.conditions, key) or _reads_property(s.draft_conditions, key)]


@dataclass(frozen=True)
class SizePoint:
    """One bucket of an audience's history: its start, the member count at its close (after the changes inside
    it), and how many entered and exited within it."""

    at: datetime
    size: int
    entered: int
    exited: int


BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
ENTERED, EXITED = SegmentMembershipChange.Kind.ENTERED, SegmentMembershipChange.Kind.EXITED


def _bucket_start(moment: datetime, bucket: str) -> datetime:
    start = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return start.replace(hour=0) if bucket == "day" else start


def segment_size_history(
    segment: Segment, *, since: datetime, until: datetime | None = None, bucket: str = "day"
) -> list[SizePoint]:
    """The member count over time, from the current count and the enter/exit history, in UTC hour or day buckets.

    The size at a bucket's close is the current count minus who entered after it plus who exited after it, so
    one GROUP BY over the history since `since` (the (segment, -at) index) answers it, however large the audience:
    no per-member or per-bucket query, and buckets without changes cost nothing. History written by evaluation and
    the live path is complete (every membership change is recorded), which is what makes the subtraction exact.
    """
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}")
    first = _bucket_start(since, bucket)
    last = _bucket_start(until or timezone.now(), bucket)
    per_bucket = (
        SegmentMembershipChange.objects.filter(segment=segment, at__gte=first)
        .annotate(bucket=Trunc("at", bucket, tzinfo=UTC))
        .values("bucket")
        .annotate(entered=Count("pk", filter=Q(kind=ENTERED)), exited=Count("pk", filter=Q(kind=EXITED)))
        .order_by()
    )
    counts = {row["bucket"]: (row["entered"], row["exited"]) for row in per_bucket}
    current = Segment.objects.filter(pk=segment.pk).values_list("member_count", flat=True).first() or 0
    size = current - sum(entered - exited for start, (entered, exited) in counts.items() if start > last)
    points: list[SizePoint] = []
    start = last
    while start >= first:
        entered, exited = counts.get(start, (0, 0))
        points.append(SizePoint(at=start, size=size, entered=entered, exited=exited))
        size -= entered - exited
        start -= BUCKETS[bucket]
    return points[::-1]


def segment_changes(segment: Segment, *, kind: str = "") -> QuerySet[SegmentMembershipChange]:
    """A segment's entries and exits (or only one kind), newest first, with the customer joined."""
    changes = SegmentMembershipChange.objects.filter(segment=segment).select_related("customer")
    if kind:
        changes = changes.filter(kind=kind)
    return changes.order_by("-at", "-id")
