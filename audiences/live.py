"""Live audiences: segments whose membership follows events within about a second.

After a batch of events is stored, the worker re-evaluates only the customers it touched, and only against the
live audiences whose conditions could have changed — an audience reading an event named in the batch, profile
traits when the batch identified or grouped someone, billing properties when Stripe told something, a computed
trait whose value just changed. All of them are decided in one query (one boolean column per audience over the
touched customers), compared with the stored membership, and the difference written with INSERT … ON CONFLICT
DO NOTHING / DELETE … RETURNING, so a concurrent full evaluation and this path never record a change twice.

Every change of a live audience is published the same way, whichever path found it (this one, the periodic full
evaluation, the time sweep): an `Audience Entered` / `Audience Exited` event on the customer's timeline, an
outbound message for the destinations, and — on exit — the suppression hooks that let later features (emails,
plays) cancel what entering scheduled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import BooleanField, ExpressionWrapper, F
from django.utils import timezone
from django.utils.text import slugify

from audiences.models import Customer, Event, Source
from audiences.services import source_create
from integrations.destinations import Outbound, outbound_emit
from integrations.models import OutboundKind
from segments.compiler import compile_node
from segments.conditions import Condition, EventCondition, Group, InvalidCondition, Node, SegmentCondition, parse_tree
from segments.models import Segment, SegmentMembership, SegmentMembershipChange

logger = logging.getLogger(__name__)

INTERNAL_SOURCE_NAME = "Trialloop"
ENTERED, EXITED = SegmentMembershipChange.Kind.ENTERED, SegmentMembershipChange.Kind.EXITED
TIME_OPERATORS = {"within_last_days", "within_next_days", "more_than_days_ago"}
BILLING_PREFIXES = ("subscriber.", "subscription.", "plan.", "product.", "addon.")


@dataclass(frozen=True)
class Dependencies:
    """What can change a tree's result: events by name, profile traits, billing rows, computed traits, time."""

    events: frozenset[str] = frozenset()
    profile: bool = False
    billing: bool = False
    computed: frozenset[str] = frozenset()
    time_based: bool = False


def dependencies(tree: Node) -> Dependencies:
    """Walk a parsed tree (other segments' trees included) for what it reads."""
    events: set[str] = set()
    computed: set[str] = set()
    flags = {"profile": False, "billing": False, "time_based": False}

    def walk(node: Node) -> None:
        if isinstance(node, Group):
            for child in node.children:
                walk(child)
        elif isinstance(node, SegmentCondition):
            if node.tree is not None:
                walk(node.tree)
        elif isinstance(node, EventCondition):
            events.add(node.event)
            flags["time_based"] |= node.within_days is not None
        elif isinstance(node, Condition):
            spec = node.spec
            flags["time_based"] |= node.operator in TIME_OPERATORS or (spec is not None and spec.derived != "")
            if node.property.startswith("computed."):
                computed.add(node.property.removeprefix("computed."))
            elif node.property.startswith(BILLING_PREFIXES):
                flags["billing"] = True
            else:
                flags["profile"] = True

    walk(tree)
    return Dependencies(frozenset(events), flags["profile"], flags["billing"], frozenset(computed), flags["time_based"])


@dataclass
class BatchFacts:
    """What a processed batch changed, for deciding which audiences to re-evaluate."""

    customer_ids: set[int] = field(default_factory=set)
    event_names: set[str] = field(default_factory=set)
    profile_changed: bool = False
    billing_changed: bool = False
    changed_traits: set[str] = field(default_factory=set)

    def touches(self, needs: Dependencies) -> bool:
        return bool(
            needs.events & self.event_names
            or needs.computed & self.changed_traits
            or (needs.profile and self.profile_changed)
            or (needs.billing and self.billing_changed)
        )


@dataclass(frozen=True)
class MembershipChange:
    """A customer entering or leaving a live audience (the history row's id makes it unique)."""

    segment_id: int
    customer_id: int
    kind: str
    change_id: int


ExitHook = Callable[[Segment, list[int]], None]
_exit_hooks: list[ExitHook] = []


def on_audience_exit(hook: ExitHook) -> ExitHook:
    """Register a suppression hook, called with the audience and the customers who just left it, inside the
    transaction that records the exit (usable as a decorator; features register in AppConfig.ready())."""
    if hook not in _exit_hooks:
        _exit_hooks.append(hook)
    return hook


def remove_exit_hook(hook: ExitHook) -> None:
    if hook in _exit_hooks:
        _exit_hooks.remove(hook)


def audience_key(segment: Segment) -> str:
    """The snake_case key downstream tools see, as Segment Engage names audiences."""
    return segment.audience_key or slugify(segment.name).replace("-", "_") or f"audience_{segment.pk}"


def internal_source() -> Source:
    """The built-in source Trialloop's own timeline events are recorded under (its key is never used)."""
    source = Source.objects.filter(kind=Source.Kind.TRIALLOOP).order_by("pk").first()
    if source is None:
        taken = Source.objects.filter(name=INTERNAL_SOURCE_NAME).exists()
        name = f"{INTERNAL_SOURCE_NAME} (internal)" if taken else INTERNAL_SOURCE_NAME
        source, _ = source_create(name=name, kind=Source.Kind.TRIALLOOP)
    return source


def audience_changes_publish(segment: Segment, changes: Sequence[MembershipChange], now: datetime) -> None:
    """Timeline events, outbound messages and exit hooks for recorded changes of a live audience."""
    if not changes or not segment.is_live:
        return
    key = audience_key(segment)
    audience = {"id": segment.pk, "key": key, "name": segment.name}
    source = internal_source()
    names: dict[str, str] = {ENTERED: "Audience Entered", EXITED: "Audience Exited"}
    kinds: dict[str, str] = {ENTERED: OutboundKind.AUDIENCE_ENTERED, EXITED: OutboundKind.AUDIENCE_EXITED}
    Event.objects.bulk_create(
        [
            Event(
                source=source,
                message_id=f"audience:{c.change_id}",
                customer_id=c.customer_id,
                type=Event.Type.TRACK,
                name=names[c.kind],
                properties={"audience_id": segment.pk, "audience_key": key, "audience_name": segment.name},
                timestamp=now,
                received_at=now,
            )
            for c in changes
        ],
        batch_size=1000,
        ignore_conflicts=True,
    )
    outbound_emit(
        [
            Outbound(
                kind=kinds[c.kind],
                customer_id=c.customer_id,
                idempotency_key=f"audience:{c.change_id}",
                occurred_at=now,
                data={"audience": audience},
            )
            for c in changes
        ]
    )
    exited = [c.customer_id for c in changes if c.kind == EXITED]
    if exited:
        for hook in list(_exit_hooks):
            hook(segment, exited)


def changes_record(
    segment: Segment, entered: Iterable[int], exited: Iterable[int], now: datetime
) -> list[MembershipChange]:
    """History rows for what actually changed, and their publication if the segment is live."""
    rows = [SegmentMembershipChange(segment=segment, customer_id=c, kind=ENTERED, at=now) for c in sorted(entered)]
    rows += [SegmentMembershipChange(segment=segment, customer_id=c, kind=EXITED, at=now) for c in sorted(exited)]
    created = SegmentMembershipChange.objects.bulk_create(rows, batch_size=1000)
    changes = [MembershipChange(segment.pk, r.customer_id, r.kind, r.pk or 0) for r in created]
    audience_changes_publish(segment, changes, now)
    return changes


_parsed: dict[tuple[int, Any], tuple[Group, Dependencies]] = {}


def live_audiences() -> list[tuple[Segment, Group, Dependencies]]:
    """The live audiences with their parsed trees, parsed once per version of the conditions."""
    live = []
    for segment in Segment.objects.filter(is_live=True).order_by("pk"):
        cache_key = (segment.pk, segment.updated_at)
        if cache_key not in _parsed:
            try:
                tree = parse_tree(segment.conditions, segment_id=segment.pk)
            except InvalidCondition as broken:
                logger.warning("live audience %s skipped: %s", segment.pk, broken)
                continue
            _parsed[cache_key] = (tree, dependencies(tree))
        live.append((segment, *_parsed[cache_key]))
    return live


def _write_membership(
    entering: list[tuple[int, int]], leaving: list[tuple[int, int]], now: datetime
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Insert and delete (segment, customer) pairs; return only the pairs this transaction actually changed."""
    table = SegmentMembership._meta.db_table
    entered: list[tuple[int, int]] = []
    exited: list[tuple[int, int]] = []
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        for start in range(0, len(entering), 500):
            chunk = entering[start : start + 500]
            values = ", ".join(["(%s, %s, %s)"] * len(chunk))
            cursor.execute(
                f"INSERT INTO {table} (segment_id, customer_id, entered_at) VALUES {values} "
                "ON CONFLICT (segment_id, customer_id) DO NOTHING RETURNING segment_id, customer_id",
                [p for s, c in chunk for p in (s, c, at)],
            )
            entered += [(int(s), int(c)) for s, c in cursor.fetchall()]
        for start in range(0, len(leaving), 500):
            chunk = leaving[start : start + 500]
            pairs = " OR ".join(["(segment_id = %s AND customer_id = %s)"] * len(chunk))
            cursor.execute(
                f"DELETE FROM {table} WHERE {pairs} RETURNING segment_id, customer_id",
                [p for pair in chunk for p in pair],
            )
            exited += [(int(s), int(c)) for s, c in cursor.fetchall()]
    return entered, exited


def audiences_refresh(*, facts: BatchFacts, now: datetime | None = None) -> list[MembershipChange]:
    """Re-evaluate the touched customers against the live audiences the batch could have changed.

    One query decides every (audience, customer) pair; only differences are written. Runs inside the caller's
    transaction, with the customers already locked.
    """
    now = now or timezone.now()
    if not facts.customer_ids:
        return []
    relevant = [(segment, tree) for segment, tree, needs in live_audiences() if facts.touches(needs)]
    if not relevant:
        return []
    customer_ids = sorted(facts.customer_ids)
    columns = {
        f"in_{segment.pk}": ExpressionWrapper(compile_node(tree, now), output_field=BooleanField())
        for segment, tree in relevant
    }
    decided = Customer.objects.filter(pk__in=customer_ids).annotate(**columns).values_list("pk", *columns)
    matching = {
        (segment.pk, row[0]) for row in decided for (segment, _), held in zip(relevant, row[1:], strict=True) if held
    }
    current = set(
        SegmentMembership.objects.filter(
            segment__in=[s for s, _ in relevant], customer_id__in=customer_ids
        ).values_list("segment_id", "customer_id")
    )
    entered, exited = _write_membership(sorted(matching - current), sorted(current - matching), now)
    changes: list[MembershipChange] = []
    for segment, _ in relevant:
        came = [c for s, c in entered if s == segment.pk]
        went = [c for s, c in exited if s == segment.pk]
        if came or went:
            changes += changes_record(segment, came, went, now)
            Segment.objects.filter(pk=segment.pk).update(member_count=F("member_count") + len(came) - len(went))
    return changes
