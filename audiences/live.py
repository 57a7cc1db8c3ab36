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
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import F
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
    """What a processed batch changed, per customer, for deciding which audiences to re-evaluate for whom."""

    events: dict[int, set[str]] = field(default_factory=dict)  # customer → names of the batch's events
    profile_changed: set[int] = field(default_factory=set)  # identified or grouped in the batch
    billing_changed: set[int] = field(default_factory=set)  # told about by Stripe
    changed_traits: dict[int, set[str]] = field(default_factory=dict)  # customer → computed trait keys

    def candidates(self, needs: Dependencies) -> set[int]:
        """The customers whose result for a tree with these needs this batch could have changed."""
        found = {c for c, names in self.events.items() if needs.events & names}
        found |= {c for c, keys in self.changed_traits.items() if needs.computed & keys}
        if needs.profile:
            found |= self.profile_changed
        if needs.billing:
            found |= self.billing_changed
        return found


@dataclass(frozen=True)
class MembershipChange:
    """A customer entering or leaving a live audience (the history row's id makes it unique)."""

    segment_id: int
    customer_id: int
    kind: str
    change_id: int
    key: str = ""  # for an announcement without a history row (audience_members_announce)

    @property
    def idempotency_key(self) -> str:
        return self.key or f"audience:{self.change_id}"


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


EnterHook = Callable[[Segment, list[int]], None]
_enter_hooks: list[EnterHook] = []


def on_audience_enter(hook: EnterHook) -> EnterHook:
    """Register a trigger hook, called with the audience and the customers who just entered it, inside the
    transaction that records the entry (features queue their work on commit; register in AppConfig.ready())."""
    if hook not in _enter_hooks:
        _enter_hooks.append(hook)
    return hook


def remove_enter_hook(hook: EnterHook) -> None:
    if hook in _enter_hooks:
        _enter_hooks.remove(hook)


def audience_key(segment: Segment) -> str:
    """The snake_case key downstream tools see, as Segment Engage names audiences."""
    return segment.audience_key or slugify(segment.name).replace("-", "_") or f"audience_{segment.pk}"


def internal_source() -> Source:
    """The built-in source Trialloop's own timeline events are recorded under (its key is never used)."""
    source = Source.objects.filter(kind=Source.Kind.TRIALLOOP).order_by("pk").only("pk").first()
    if source is None:
        taken = Source.objects.filter(name=INTERNAL_SOURCE_NAME).exists()
        name = f"{INTERNAL_SOURCE_NAME} (internal)" if taken else INTERNAL_SOURCE_NAME
        source, _ = source_create(name=name, kind=Source.Kind.TRIALLOOP)
    return source


def audience_changes_publish(segments: dict[int, Segment], changes: Sequence[MembershipChange], now: datetime) -> None:
    """Timeline events, outbound messages and exit hooks for recorded changes of live audiences (a handful of
    statements whatever the number of audiences and customers)."""
    changes = [c for c in changes if segments[c.segment_id].is_live]
    if not changes:
        return
    audiences = {
        pk: {"id": pk, "key": audience_key(segment), "name": segment.name}
        for pk, segment in segments.items()
        if segment.is_live
    }
    source = internal_source()
    names: dict[str, str] = {ENTERED: "Audience Entered", EXITED: "Audience Exited"}
    kinds: dict[str, str] = {ENTERED: OutboundKind.AUDIENCE_ENTERED, EXITED: OutboundKind.AUDIENCE_EXITED}
    Event.objects.bulk_create(
        [
            Event(
                source=source,
                message_id=c.idempotency_key,
                customer_id=c.customer_id,
                type=Event.Type.TRACK,
                name=names[c.kind],
                properties={f"audience_{k}": v for k, v in audiences[c.segment_id].items()},
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
                idempotency_key=c.idempotency_key,
                occurred_at=now,
                data={"audience": audiences[c.segment_id]},
            )
            for c in changes
        ]
    )
    exited: dict[int, list[int]] = {}
    for c in changes:
        if c.kind == EXITED:
            exited.setdefault(c.segment_id, []).append(c.customer_id)
    for segment_id, customer_ids in exited.items():
        for hook in list(_exit_hooks):
            hook(segments[segment_id], customer_ids)
    entered: dict[int, list[int]] = {}
    for c in changes:
        if c.kind == ENTERED and not c.key:
            entered.setdefault(c.segment_id, []).append(c.customer_id)
    for segment_id, customer_ids in entered.items():
        for enter_hook in list(_enter_hooks):
            enter_hook(segments[segment_id], customer_ids)


def changes_record(
    segments: dict[int, Segment], entered: Iterable[tuple[int, int]], exited: Iterable[tuple[int, int]], now: datetime
) -> list[MembershipChange]:
    """History rows for what actually changed — (segment id, customer id) pairs — and their publication for the
    live ones."""
    # Exits first: a customer moving from one audience to another leaves before arriving, in every log.
    rows = [SegmentMembershipChange(segment_id=s, customer_id=c, kind=EXITED, at=now) for s, c in sorted(exited)]
    rows += [SegmentMembershipChange(segment_id=s, customer_id=c, kind=ENTERED, at=now) for s, c in sorted(entered)]
    created = SegmentMembershipChange.objects.bulk_create(rows, batch_size=1000)
    changes = [MembershipChange(r.segment_id, r.customer_id, r.kind, r.pk or 0) for r in created]
    audience_changes_publish(segments, changes, now)
    return changes


def audience_members_announce(segment: Segment, now: datetime | None = None) -> int:
    """Publish the current members of a segment that just became a live audience as having entered it — the
    timeline events and outbound messages (identify {audience_key: true} for Segment destinations) a newly synced
    audience sends for everyone already in it. No history row: they did not enter now. Returns how many."""
    now = now or timezone.now()
    stamp = int(segment.updated_at.timestamp())  # the switch: a retried task announces under the same keys
    members = SegmentMembership.objects.filter(segment=segment).order_by("customer_id")
    announced = 0
    for start in range(0, members.count(), 2000):
        chunk = list(members.values_list("customer_id", flat=True)[start : start + 2000])
        changes = [
            MembershipChange(segment.pk, c, ENTERED, 0, key=f"audience:{segment.pk}:live-{stamp}:{c}") for c in chunk
        ]
        audience_changes_publish({segment.pk: segment}, changes, now)
        announced += len(changes)
    return announced


_parsed: dict[tuple[int, Any], tuple[Group, Dependencies]] = {}
_compiled: dict[tuple[int, Any, datetime], tuple[str, tuple[Any, ...]]] = {}
COMPILED_CACHE_SIZE = 2000
# Audiences decided per statement (SQLite allows 500 terms in a compound SELECT).
AUDIENCES_PER_QUERY = 100


def live_audiences() -> list[tuple[Segment, Group, Dependencies]]:
    """The live audiences with their parsed trees, parsed once per version of the conditions (which are only
    read from the database for a version not seen yet)."""
    live = []
    segments = Segment.objects.filter(is_live=True).defer("conditions", "draft_conditions", "description")
    for segment in segments.order_by("pk"):
        cache_key = (segment.pk, segment.updated_at)
        if cache_key not in _parsed:
            conditions = Segment.objects.filter(pk=segment.pk).values_list("conditions", flat=True).first()
            try:
                tree = parse_tree(conditions, segment_id=segment.pk)
            except InvalidCondition as broken:
                logger.warning("live audience %s skipped: %s", segment.pk, broken)
                continue
            _parsed[cache_key] = (tree, dependencies(tree))
        live.append((segment, *_parsed[cache_key]))
    return live


def _members_sql(segment: Segment, tree: Group, as_of: datetime) -> tuple[str, tuple[Any, ...]]:
    """The audience's compiled SELECT of member ids, built once per version of the conditions and minute."""
    key = (segment.pk, segment.updated_at, as_of)
    if key not in _compiled:
        if len(_compiled) >= COMPILED_CACHE_SIZE:
            _compiled.clear()
        members = Customer.objects.filter(compile_node(tree, as_of)).annotate(member_id=F("pk")).values("member_id")
        sql, params = members.query.sql_with_params()
        _compiled[key] = (sql, tuple(params))
    return _compiled[key]


def _decide(relevant: list[tuple[Segment, Group, set[int]]], now: datetime) -> set[tuple[int, int]]:
    """(audience, customer) pairs that hold, among each audience's candidates: the audiences' compiled queries,
    each restricted to its candidates (the databases push the id list into the subquery, so the conditions run
    for those customers only), in one UNION ALL per hundred audiences.

    The compiled SQL is reused for a minute: time-relative conditions are taken as of the end of the current
    minute, so "in the last N days" includes every event up to now and its far edge is at most a minute late —
    which the time sweep, evaluating with the exact time every minute, settles."""
    as_of = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    matching: set[tuple[int, int]] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(relevant), AUDIENCES_PER_QUERY):
            parts: list[str] = []
            params: list[Any] = []
            for segment, tree, candidates in relevant[start : start + AUDIENCES_PER_QUERY]:
                sql, sql_params = _members_sql(segment, tree, as_of)
                ids = ", ".join(str(int(c)) for c in sorted(candidates))  # our own integer ids
                parts.append(f"SELECT {int(segment.pk)}, m.member_id FROM ({sql}) m WHERE m.member_id IN ({ids})")
                params.extend(sql_params)
            cursor.execute(" UNION ALL ".join(parts), params)
            matching |= {(int(segment_id), int(customer_id)) for segment_id, customer_id in cursor.fetchall()}
    return matching


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
    """Re-evaluate, for each live audience, the customers whose result this batch could have changed.

    One query decides every (audience, customer) pair (see _decide); only differences are written. Runs inside the
    caller's transaction, with the customers already locked.
    """
    now = now or timezone.now()
    relevant = [(segment, tree, facts.candidates(needs)) for segment, tree, needs in live_audiences()]
    relevant = [(segment, tree, candidates) for segment, tree, candidates in relevant if candidates]
    if not relevant:
        return []
    customer_ids = sorted(set().union(*(candidates for _, _, candidates in relevant)))
    matching = _decide(relevant, now)
    considered = {(segment.pk, c) for segment, _, candidates in relevant for c in candidates}
    current = considered & set(
        SegmentMembership.objects.filter(
            segment__in=[segment for segment, _, _ in relevant], customer_id__in=customer_ids
        ).values_list("segment_id", "customer_id")
    )
    entered, exited = _write_membership(sorted(matching - current), sorted(current - matching), now)
    if not entered and not exited:
        return []
    segments = {segment.pk: segment for segment, _, _ in relevant}
    changes = changes_record(segments, entered, exited, now)
    for segment_id in {s for s, _ in entered} | {s for s, _ in exited}:
        delta = len([1 for s, _ in entered if s == segment_id]) - len([1 for s, _ in exited if s == segment_id])
        Segment.objects.filter(pk=segment_id).update(member_count=F("member_count") + delta)
    return changes
