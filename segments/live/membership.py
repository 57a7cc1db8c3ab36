"""Live audience membership: segments whose membership follows events within about a second.

After a batch of events is stored, the worker re-evaluates only the customers it touched, and only against the
live audiences whose conditions could have changed — an audience reading an event named in the batch, profile
traits when the batch identified or grouped someone, billing properties when Stripe told something, a computed
trait whose value just changed. All of them are decided in one query (one boolean column per audience over the
touched customers), compared with the stored membership, and the difference written with INSERT … ON CONFLICT
DO NOTHING / DELETE … RETURNING, so a concurrent full evaluation and this path never record a change twice.
Changes are published by segments.live.publish; "in the last N days" edges are durable timers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Case, F, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from audiences.models import Customer
from audiences.pipeline import BatchFacts
from config.timers import DueTimer, timers_schedule
from segments.conditions import Group
from segments.live.compiled import AUDIENCES_PER_QUERY, compiled_members, compiled_window_edges, live_audiences
from segments.live.publish import MembershipChange, changes_record
from segments.models import Segment, SegmentMembership

# The durable timer kind of "in the last N days" edges (stored in Timer rows, so its value never changes).
TIME_WINDOW_TIMER = "audiences.time_window"


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


def membership_on_batch(facts: BatchFacts, now: datetime) -> list[MembershipChange]:
    """The settled phase of a stored batch (audiences.pipeline.on_batch_settled, registered in
    SegmentsConfig.ready()): re-decide the live audiences for the customers the batch could have changed."""
    return audiences_refresh(facts=facts, now=now)
