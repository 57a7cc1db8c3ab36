"""Compiled live audiences: each live audience's tree parsed once per version of its conditions (and of the
segments it references), and its member query compiled once per version, valid at any instant — so a batch pays
for no parsing and no ORM compilation, and every path judges time the same way."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from django.db.models import F, Min, QuerySet

from audiences.models import Customer
from segments.compiler import compile_node, events_matching
from segments.conditions import EventCondition, Group, InvalidCondition, parse_tree
from segments.live.dependencies import Dependencies, dependencies
from segments.models import Segment

logger = logging.getLogger(__name__)

_parsed: dict[tuple[int, Any], tuple[Group, Dependencies]] = {}
COMPILED_CACHE_SIZE = 2000
# Audiences decided per statement (SQLite allows 500 terms in a compound SELECT).
AUDIENCES_PER_QUERY = 100


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
