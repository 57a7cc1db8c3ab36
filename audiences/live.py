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
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Case, F, Min, QuerySet, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.text import slugify

from audiences.models import Customer, Event, Source
from audiences.services import source_create
from config.facts import Fact, FactKind, facts_record
from config.timers import DueTimer, timers_schedule
from segments.compiler import compile_node, events_matching
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
    time_based: bool = False  # time alone changes it, other than through event windows (swept every minute)
    references: frozenset[int] = frozenset()  # segments it reads, directly or through others
    windows: tuple[EventCondition, ...] = ()  # "performed … in the last N days" leaves: their edges are timers


def dependencies(tree: Node) -> Dependencies:
    """Walk a parsed tree (other segments' trees included) for what it reads."""
    events: set[str] = set()
    computed: set[str] = set()
    references: set[int] = set()
    windows: list[EventCondition] = []
    flags = {"profile": False, "billing": False, "time_based": False}

    def walk(node: Node) -> None:
        if isinstance(node, Group):
            for child in node.children:
                walk(child)
        elif isinstance(node, SegmentCondition):
            references.add(node.segment_id)
            if node.tree is not None:
                walk(node.tree)
        elif isinstance(node, EventCondition):
            events.add(node.event)
            if node.within_days is not None and node not in windows:
                windows.append(node)
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
    return Dependencies(
        frozenset(events),
        flags["profile"],
        flags["billing"],
        frozenset(computed),
        flags["time_based"],
        frozenset(references),
        tuple(windows),
    )


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
    """A customer entering or leaving a live audience. `entry_id` names the stay (the membership row the entry
    created; its exit carries the same id), so a publication is keyed by (audience, customer, entry) and no path
    can publish one entry, or its exit, twice."""

    segment_id: int
    customer_id: int
    kind: str
    entry_id: int

    @property
    def idempotency_key(self) -> str:
        return f"audience:{self.segment_id}:{self.customer_id}:{self.entry_id}:{self.kind}"


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


def audience_changes_publish(
    segments: dict[int, Segment], changes: Sequence[MembershipChange], now: datetime, *, hooks: bool = True
) -> None:
    """Timeline events, outbound messages and the enter/exit hooks for entries and exits of live audiences (a
    handful of statements whatever the number of audiences and customers). Callers pass only changes whose
    publication they claimed (entries_publish) or whose published entry they deleted, so each is published once;
    `hooks=False` for members announced when an audience is switched live (they did not enter now)."""
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
    kinds: dict[str, str] = {ENTERED: FactKind.AUDIENCE_ENTERED, EXITED: FactKind.AUDIENCE_EXITED}
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
    facts_record(
        [
            Fact(
                kind=kinds[c.kind],
                customer_id=c.customer_id,
                idempotency_key=c.idempotency_key,
                occurred_at=now,
                data={"audience": audiences[c.segment_id]},
            )
            for c in changes
        ]
    )
    if not hooks:
        return
    exited: dict[int, list[int]] = {}
    entered: dict[int, list[int]] = {}
    for c in changes:
        (exited if c.kind == EXITED else entered).setdefault(c.segment_id, []).append(c.customer_id)
    for segment_id, customer_ids in exited.items():
        for hook in list(_exit_hooks):
            hook(segments[segment_id], customer_ids)
    for segment_id, customer_ids in entered.items():
        for enter_hook in list(_enter_hooks):
            enter_hook(segments[segment_id], customer_ids)


def _entries_claim(segments: dict[int, Segment], now: datetime, entry_ids: Sequence[int]) -> list[MembershipChange]:
    """Claim the publication of the entries of live audiences not published yet: the given membership rows, or —
    with no ids — every unpublished member of these audiences. The claim is one conditional UPDATE of
    `published_at`, so of two paths racing for one entry exactly one gets it."""
    live = sorted(pk for pk, segment in segments.items() if segment.is_live)
    if not live:
        return []
    table = SegmentMembership._meta.db_table
    at = connection.ops.adapt_datetimefield_value(now)
    claimed: list[MembershipChange] = []
    with connection.cursor() as cursor:
        chunks = [list(entry_ids[i : i + 1000]) for i in range(0, len(entry_ids), 1000)] if entry_ids else [[]]
        for chunk in chunks:
            which = f"id IN ({', '.join(str(int(i)) for i in chunk)})" if chunk else "true"
            cursor.execute(
                f"UPDATE {table} SET published_at = %s WHERE published_at IS NULL "
                f"AND segment_id IN ({', '.join(str(pk) for pk in live)}) AND {which} "
                "RETURNING segment_id, customer_id, id",
                [at],
            )
            claimed += [MembershipChange(int(s), int(c), ENTERED, int(i)) for s, c, i in cursor.fetchall()]
    claimed.sort(key=lambda c: (c.segment_id, c.customer_id))
    return claimed


def entries_publish(
    segments: dict[int, Segment], now: datetime, *, entry_ids: Sequence[int] = (), hooks: bool = True
) -> list[MembershipChange]:
    """Claim (_entries_claim) and publish the entries of live audiences not published yet: the given membership
    rows, or — with no ids — every unpublished member of these audiences (an audience just switched live, or an
    entry a concurrent path recorded while the audience was not live yet)."""
    claimed = _entries_claim(segments, now, entry_ids)
    audience_changes_publish(segments, claimed, now, hooks=hooks)
    return claimed


def changes_record(
    segments: dict[int, Segment],
    entered: Iterable[tuple[int, int, int]],
    exited: Iterable[tuple[int, int, int, bool]],
    now: datetime,
) -> list[MembershipChange]:
    """History rows for what actually changed — (segment, customer, membership row) entered, (segment, customer,
    membership row, entry published) exited — and their publication for the live audiences: each entry once
    (claimed), each exit of a published entry (an entry never published has no exit to tell). Returns every
    recorded change, published or not."""
    entered, exited = sorted(entered), sorted(exited)
    # Exits first: a customer moving from one audience to another leaves before arriving, in every log.
    rows = [SegmentMembershipChange(segment_id=s, customer_id=c, kind=EXITED, at=now) for s, c, _, _ in exited]
    rows += [SegmentMembershipChange(segment_id=s, customer_id=c, kind=ENTERED, at=now) for s, c, _ in entered]
    SegmentMembershipChange.objects.bulk_create(rows, batch_size=1000)
    exits = [MembershipChange(s, c, EXITED, entry) for s, c, entry, _ in exited]
    published = {entry for _, _, entry, was_published in exited if was_published}
    claimed = _entries_claim(segments, now, [entry for _, _, entry in entered]) if entered else []
    audience_changes_publish(segments, [c for c in exits if c.entry_id in published] + claimed, now)
    return exits + [MembershipChange(s, c, ENTERED, entry) for s, c, entry in entered]


def audience_members_announce(segment: Segment, now: datetime | None = None) -> int:
    """Publish the members of a segment that just became a live audience whose entry was never published — the
    timeline events and outbound messages (identify {audience_key: true} for Segment destinations) a newly synced
    audience sends for everyone already in it, keyed by their entry like any other, so an entry the evaluation
    already published is not sent again. No history row and no enter hooks: they did not enter now."""
    return len(entries_publish({segment.pk: segment}, now or timezone.now(), hooks=False))


_parsed: dict[tuple[int, Any], tuple[Group, Dependencies]] = {}
COMPILED_CACHE_SIZE = 2000
# Audiences decided per statement (SQLite allows 500 terms in a compound SELECT).
AUDIENCES_PER_QUERY = 100
TIME_WINDOW_TIMER = "audiences.time_window"


def _version(segment: Segment, versions: dict[int, datetime]) -> tuple[Any, ...]:
    """What a parsed tree depends on: the segment's own version and those of the segments it references (their
    trees are inlined at parse time, so editing a referenced segment must make a new tree)."""
    return (segment.updated_at, tuple(sorted(versions.items())))


def live_audiences(only: Collection[int] | None = None) -> list[tuple[Segment, Group, Dependencies, Any]]:
    """The live audiences (or those of them in `only`) with their parsed trees, parsed once per version of the
    conditions — theirs and those of the segments they reference (which are only read from the database for a
    version not seen yet). The last item is that version, under which the compiled query is cached."""
    live = []
    found = Segment.objects.filter(is_live=True)
    if only is not None:
        found = found.filter(pk__in=sorted(only))
    segments = list(found.defer("conditions", "draft_conditions", "description").order_by("pk"))
    referenced = set().union(*(_references.get(segment.pk, frozenset()) for segment in segments))
    versions = dict(Segment.objects.filter(pk__in=referenced).values_list("pk", "updated_at")) if referenced else {}
    for segment in segments:
        refs = _references.get(segment.pk, frozenset())
        cache_key = (segment.pk, _version(segment, {pk: versions[pk] for pk in refs if pk in versions}))
        if cache_key not in _parsed:
            conditions = Segment.objects.filter(pk=segment.pk).values_list("conditions", flat=True).first()
            try:
                tree = parse_tree(conditions, segment_id=segment.pk)
            except InvalidCondition as broken:
                logger.warning("live audience %s skipped: %s", segment.pk, broken)
                continue
            needs = dependencies(tree)
            if needs.references != refs:  # first parse, or the references changed: key by their versions
                _references[segment.pk] = needs.references
                current = dict(Segment.objects.filter(pk__in=needs.references).values_list("pk", "updated_at"))
                cache_key = (segment.pk, _version(segment, current))
            _parsed[cache_key] = (tree, needs)
        live.append((segment, *_parsed[cache_key], cache_key[1]))
    return live


_references: dict[int, frozenset[int]] = {}


@dataclass(frozen=True)
class CompiledQuery:
    """A compiled SELECT, with which parameters are instants relative to "now"."""

    sql: str
    params: tuple[Any, ...]
    compiled_at: datetime
    relative: tuple[bool, ...]

    def at(self, now: datetime) -> tuple[str, tuple[Any, ...]]:
        """The statement for the exact instant `now`: every relative instant moved by (now - compiled_at)."""
        shift = now - self.compiled_at
        return self.sql, tuple(
            _shifted(p, shift) if moves else p for p, moves in zip(self.params, self.relative, strict=True)
        )


def _instant(param: Any) -> datetime | None:
    """A compiled parameter as an instant: a datetime (PostgreSQL) or the text SQLite's adapter made of one."""
    if isinstance(param, datetime):
        return param
    if isinstance(param, str) and len(param) >= 19 and param[4] == "-" and param[10] == " ":
        try:
            return datetime.fromisoformat(param)
        except ValueError:
            return None
    return None


def _shifted(param: Any, shift: timedelta) -> Any:
    """The parameter moved by `shift`, in the form it came in."""
    if isinstance(param, datetime):
        return param + shift
    moved = _instant(param)
    assert moved is not None
    return str(moved + shift)


_compiled_members: dict[tuple[Any, ...], CompiledQuery] = {}
_compiled_windows: dict[tuple[Any, ...], tuple[tuple[CompiledQuery, timedelta], ...]] = {}
T = TypeVar("T")
_PROBE = datetime(2001, 1, 1, tzinfo=UTC)
_PROBE_SHIFT = timedelta(days=3, seconds=7, microseconds=11)  # not whole days: a date parameter never matches it


def compiled_at_any_instant(build: Callable[[datetime], QuerySet[Any]], what: str) -> CompiledQuery:
    """Compile the queryset `build(now)` once, valid at any instant.

    Every time-relative condition compiles to "now ± a fixed span", so the query is compiled at two instants and
    the parameters that moved by exactly the difference are the relative ones; at run time they are moved to the
    exact current time. Live decisions, the full evaluation and the timers thus all judge time the same way (no
    minute rounding for one path to disagree with another about), and a batch pays for no ORM compilation."""
    sql, params = build(_PROBE).query.sql_with_params()
    shifted_sql, shifted = build(_PROBE + _PROBE_SHIFT).query.sql_with_params()
    if shifted_sql != sql or len(shifted) != len(params):
        raise ValueError(f"{what} does not compile to one statement at every instant")
    instants = [(_instant(a), _instant(b)) for a, b in zip(params, shifted, strict=True)]
    relative = tuple(a is not None and b is not None and b - a == _PROBE_SHIFT for a, b in instants)
    return CompiledQuery(sql, tuple(params), _PROBE, relative)


def _cached(cache: dict[tuple[Any, ...], T], key: tuple[Any, ...], make: Callable[[], T]) -> T:
    """A per-process cache of compiled statements, emptied when it reaches COMPILED_CACHE_SIZE (old versions)."""
    if key not in cache:
        if len(cache) >= COMPILED_CACHE_SIZE:
            cache.clear()
        cache[key] = make()
    return cache[key]


def compiled_members(segment: Segment, tree: Group, version: Any) -> CompiledQuery:
    """The audience's compiled SELECT of member ids (column member_id), built once per version of its
    conditions and valid at any instant (compiled_at_any_instant)."""

    def members(now: datetime) -> QuerySet[Any]:
        return Customer.objects.filter(compile_node(tree, now)).annotate(member_id=F("pk")).values("member_id")

    return _cached(
        _compiled_members, (segment.pk, version), lambda: compiled_at_any_instant(members, f"segment {segment.pk}")
    )


def compiled_window_edges(segment: Segment, tree: Group, version: Any) -> tuple[tuple[CompiledQuery, timedelta], ...]:
    """For each "performed … in the last N days" leaf of the audience: the compiled SELECT of each customer's
    oldest event inside the window (columns customer_id, oldest), and the span after which that event leaves it
    — built once per version, like compiled_members."""

    def edges() -> tuple[tuple[CompiledQuery, timedelta], ...]:
        found = []
        for leaf in dependencies(tree).windows:

            def oldest(now: datetime, leaf: EventCondition = leaf) -> QuerySet[Any]:
                events = events_matching(leaf, now).order_by().values("customer_id")
                return events.annotate(oldest=Min("timestamp"))

            span = timedelta(days=leaf.within_days or 0, microseconds=1)  # the window includes now - N days
            found.append((compiled_at_any_instant(oldest, f"segment {segment.pk}'s window"), span))
        return tuple(found)

    return _cached(_compiled_windows, (segment.pk, version), edges)


def _decide(relevant: list[tuple[Segment, Group, Any, set[int]]], now: datetime) -> set[tuple[int, int]]:
    """(audience, customer) pairs that hold at the exact instant `now`, among each audience's candidates: the
    audiences' compiled queries, each restricted to its candidates (the databases push the id list into the
    subquery, so the conditions run for those customers only), in one UNION ALL per hundred audiences."""
    matching: set[tuple[int, int]] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(relevant), AUDIENCES_PER_QUERY):
            parts: list[str] = []
            params: list[Any] = []
            for segment, tree, version, candidates in relevant[start : start + AUDIENCES_PER_QUERY]:
                sql, sql_params = compiled_members(segment, tree, version).at(now)
                ids = ", ".join(str(int(c)) for c in sorted(candidates))  # our own integer ids
                parts.append(f"SELECT {int(segment.pk)}, m.member_id FROM ({sql}) m WHERE m.member_id IN ({ids})")
                params.extend(sql_params)
            cursor.execute(" UNION ALL ".join(parts), params)
            matching |= {(int(segment_id), int(customer_id)) for segment_id, customer_id in cursor.fetchall()}
    return matching


def _write_membership(
    entering: list[tuple[int, int]], leaving: list[tuple[int, int]], now: datetime
) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int, bool]]]:
    """Insert and delete (segment, customer) pairs; return only the rows this transaction actually changed:
    (segment, customer, membership id) entered, (segment, customer, membership id, entry published) exited."""
    table = SegmentMembership._meta.db_table
    entered: list[tuple[int, int, int]] = []
    exited: list[tuple[int, int, int, bool]] = []
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        for start in range(0, len(entering), 500):
            chunk = entering[start : start + 500]
            values = ", ".join(["(%s, %s, %s)"] * len(chunk))
            cursor.execute(
                f"INSERT INTO {table} (segment_id, customer_id, entered_at) VALUES {values} "
                "ON CONFLICT (segment_id, customer_id) DO NOTHING RETURNING segment_id, customer_id, id",
                [p for s, c in chunk for p in (s, c, at)],
            )
            entered += [(int(s), int(c), int(i)) for s, c, i in cursor.fetchall()]
        for start in range(0, len(leaving), 500):
            chunk = leaving[start : start + 500]
            pairs = " OR ".join(["(segment_id = %s AND customer_id = %s)"] * len(chunk))
            cursor.execute(
                f"DELETE FROM {table} WHERE {pairs} RETURNING segment_id, customer_id, id, published_at",
                [p for pair in chunk for p in pair],
            )
            exited += [(int(s), int(c), int(i), published is not None) for s, c, i, published in cursor.fetchall()]
    return entered, exited


def customers_lock(customer_ids: Iterable[int]) -> None:
    """Take the customers' row locks in id order — the lock every writer of membership holds (the batch worker,
    the full evaluation, the timers), so one customer's membership is decided by one of them at a time, each
    seeing what the previous one committed."""
    ordered = sorted(set(customer_ids))
    for start in range(0, len(ordered), 2000):
        chunk = ordered[start : start + 2000]
        list(Customer.objects.select_for_update(no_key=True).filter(pk__in=chunk).order_by("pk").values_list("pk"))


def memberships_decide(
    relevant: list[tuple[Segment, Group, Any, set[int]]], now: datetime, *, recorded_at: datetime | None = None
) -> list[MembershipChange]:
    """Decide each audience's candidates at `now`, write the difference with the stored membership, record and
    publish it, and arm the time-window timers of the candidates. The caller holds the candidates' locks
    (customers_lock) inside its transaction. Changes are recorded at `recorded_at` (default: `now`)."""
    relevant = [item for item in relevant if item[3]]
    if not relevant:
        return []
    customer_ids = sorted(set().union(*(candidates for *_, candidates in relevant)))
    matching = _decide(relevant, now)
    considered = {(segment.pk, c) for segment, _, _, candidates in relevant for c in candidates}
    current = considered & set(
        SegmentMembership.objects.filter(
            segment__in=[segment for segment, *_ in relevant], customer_id__in=customer_ids
        ).values_list("segment_id", "customer_id")
    )
    at = recorded_at or now
    entered, exited = _write_membership(sorted(matching - current), sorted(current - matching), at)
    segments = {segment.pk: segment for segment, *_ in relevant}
    time_windows_schedule(relevant, now)
    if not entered and not exited:
        return []
    changes = changes_record(segments, entered, exited, at)
    deltas: dict[int, int] = {}
    for segment_id, *_ in entered:
        deltas[segment_id] = deltas.get(segment_id, 0) + 1
    for segment_id, *_ in exited:
        deltas[segment_id] = deltas.get(segment_id, 0) - 1
    deltas = {segment_id: delta for segment_id, delta in deltas.items() if delta}
    if deltas:
        # One UPDATE for every audience. Never below 0: a save of a stale segment may have written an older count;
        # evaluations set it exactly.
        delta_of = Case(*(When(pk=pk, then=Value(d)) for pk, d in sorted(deltas.items())), default=Value(0))
        Segment.objects.filter(pk__in=sorted(deltas)).update(member_count=Greatest(F("member_count") + delta_of, 0))
    return changes


def time_windows_schedule(relevant: Sequence[tuple[Segment, Group, Any, set[int] | None]], now: datetime) -> int:
    """Arm, for each live audience with "performed … in the last N days" leaves and each candidate customer (None:
    every customer), a durable timer at the next moment time alone can change the result: when the oldest
    qualifying event still inside one of its windows leaves it. One statement for every audience and leaf (their
    compiled per-customer oldest events, restricted to the candidates, in one UNION ALL per hundred leaves) and
    one upsert that writes only the timers whose moment moved; a customer with no event in any window gets no
    timer — time cannot change them until an event arrives, which arms one. The handler re-decides the customer
    and arms the next edge, so exits happen when the window closes, not on a sweep."""
    parts: list[tuple[str, tuple[Any, ...]]] = []
    spans: dict[tuple[int, int], timedelta] = {}
    for segment, tree, version, candidates in relevant:
        if not segment.is_live or candidates == set():
            continue
        which = (
            ""
            if candidates is None
            else f" WHERE w.customer_id IN ({', '.join(str(int(c)) for c in sorted(candidates))})"
        )
        for index, (compiled, span) in enumerate(compiled_window_edges(segment, tree, version)):
            sql, params = compiled.at(now)
            spans[(segment.pk, index)] = span
            parts.append((f"SELECT {int(segment.pk)}, {index}, w.customer_id, w.oldest FROM ({sql}) w{which}", params))
    due: dict[tuple[int, int], datetime] = {}
    with connection.cursor() as cursor:
        for start in range(0, len(parts), AUDIENCES_PER_QUERY):
            chunk = parts[start : start + AUDIENCES_PER_QUERY]
            cursor.execute(" UNION ALL ".join(sql for sql, _ in chunk), [p for _, params in chunk for p in params])
            for segment_id, index, customer_id, oldest in cursor.fetchall():
                if isinstance(oldest, str):  # SQLite returns the aggregate of a datetime column as text
                    oldest = datetime.fromisoformat(oldest)
                if timezone.is_naive(oldest):
                    oldest = timezone.make_aware(oldest, UTC)
                pair, edge = (int(segment_id), int(customer_id)), oldest + spans[(int(segment_id), int(index))]
                if pair not in due or edge < due[pair]:
                    due[pair] = edge
    return timers_schedule(
        TIME_WINDOW_TIMER,
        [(f"audience-time:{s}:{c}", at, {"segment": s, "customer": c}) for (s, c), at in sorted(due.items())],
        now=now,
    )


def time_windows_fire(timers: Sequence[DueTimer]) -> None:
    """A window edge came (durable timer handler, registered in AudiencesConfig.ready()): re-decide those
    customers in those audiences now, under their locks, and arm their next edges. Idempotent: the decision reads
    the current data, and one that changes nothing writes nothing."""
    wanted: dict[int, set[int]] = {}
    for timer in timers:
        wanted.setdefault(int(timer.payload["segment"]), set()).add(int(timer.payload["customer"]))
    now = max(timezone.now(), *(timer.due_at for timer in timers))  # never before the edge, whatever the clocks
    customers_lock(set().union(*wanted.values()))
    relevant = [(segment, tree, version, wanted[segment.pk]) for segment, tree, _, version in live_audiences(wanted)]
    memberships_decide(relevant, now)


def audiences_refresh(*, facts: BatchFacts, now: datetime | None = None) -> list[MembershipChange]:
    """Re-evaluate, for each live audience, the customers whose result this batch could have changed.

    One query decides every (audience, customer) pair (see _decide); only differences are written. Runs inside the
    caller's transaction, with the customers already locked.
    """
    now = now or timezone.now()
    relevant = [(segment, tree, version, facts.candidates(needs)) for segment, tree, needs, version in live_audiences()]
    return memberships_decide(relevant, now)
