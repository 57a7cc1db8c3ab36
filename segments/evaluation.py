"""Evaluating a segment: bringing its materialised membership in line with its conditions as a set-based
difference (the full evaluation the periodic task, the time sweep and publishing run), and recording why an
evaluation failed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from config.locks import task_lock
from segments.conditions import Group, InvalidCondition, parse_tree
from segments.live.compiled import compiled_members
from segments.live.dependencies import dependencies
from segments.live.membership import customers_lock, memberships_decide, time_windows_schedule
from segments.live.publish import ENTERED, EXITED, entries_publish
from segments.models import Segment, SegmentMembership


@dataclass
class Evaluation:
    """What an evaluation changed and how long it took."""

    entered: int
    exited: int
    members: int
    milliseconds: int


def segment_evaluate(*, segment: Segment, now: datetime | None = None) -> Evaluation:
    """Bring the materialised membership in line with the conditions, writing only the difference.

    The compiled query runs once, into a temporary table of matching ids, and set-based statements find who
    differs from the stored membership — as of that statement's snapshot, the evaluation's watermark. Those are
    only candidates: a batch worker may have changed them since. So they are locked (the customer lock every
    writer of membership takes) and decided again, at the same instant, from what is committed then; the real
    differences are written, recorded as history and — for a live audience — published (audiences.live). A live
    change made after the watermark is therefore never undone: the evaluation sees it before deciding. An
    evaluation that changes nothing writes no membership or history rows. A live audience's members whose entry
    was never published (recorded while it was not live) are published, once. Runs under a per-segment lock so
    two evaluations of the same segment never overlap.

    All of it runs in one savepoint: an evaluation that fails, for whatever reason, leaves nothing behind (the
    temporary table included — DDL is transactional on both databases), leaves the caller's transaction usable,
    and is recorded on the segment (segment_evaluation_failed) before the error is raised again; one that
    succeeds clears the record.
    """
    now = now or timezone.now()
    started = time.monotonic()
    with task_lock(f"segment:{segment.pk}") as acquired:
        if not acquired:
            return Evaluation(entered=0, exited=0, members=segment.member_count, milliseconds=0)
        try:
            with transaction.atomic():
                entered, exited = _membership_refresh(segment, now)
        except Exception as failure:
            segment_evaluation_failed(segment=segment, failure=failure, at=now)
            raise
        elapsed = round((time.monotonic() - started) * 1000)
        members = SegmentMembership.objects.filter(segment=segment).count()
        # The count of the rows, not this run's arithmetic: batch workers move it concurrently.
        Segment.objects.filter(pk=segment.pk).update(
            member_count=Coalesce(
                Subquery(
                    SegmentMembership.objects.filter(segment_id=OuterRef("pk"))
                    .order_by()
                    .values("segment_id")
                    .annotate(n=Count("id"))
                    .values("n")
                ),
                0,
            ),
            last_evaluated_at=now,
            last_evaluation_ms=elapsed,
            evaluation_failing_since=None,
            evaluation_error="",
        )
    return Evaluation(entered=entered, exited=exited, members=members, milliseconds=elapsed)


def _parsed(segment: Segment) -> tuple[Group, Any]:
    """The segment's tree, and the version its compiled query is cached under: its own and its references'."""
    tree = parse_tree(segment.conditions, segment_id=segment.pk)
    referenced = Segment.objects.filter(pk__in=dependencies(tree).references).values_list("pk", "updated_at")
    return tree, ("evaluation", segment.updated_at, tuple(sorted(referenced)))


def _members_sql(segment: Segment, now: datetime) -> tuple[str, tuple[Any, ...]]:
    """The compiled SELECT of the segment's member ids (column member_id) at the instant `now`."""
    tree, version = _parsed(segment)
    return compiled_members(segment, tree, version).at(now)


def _membership_refresh(segment: Segment, now: datetime) -> tuple[int, int]:
    """The set-based difference of segment_evaluate; to be run inside a transaction. Entered, exited."""
    tree, version = _parsed(segment)
    needs = dependencies(tree)
    members_sql, params = _members_sql(segment, now)
    membership = SegmentMembership._meta.db_table
    matching = f"segment_matching_{segment.pk}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {matching} (id bigint PRIMARY KEY)")
        cursor.execute(f"INSERT INTO {matching} (id) SELECT member_id FROM ({members_sql}) q", params)
        cursor.execute(
            f"SELECT t.id FROM {matching} t WHERE NOT EXISTS "
            f"(SELECT 1 FROM {membership} m WHERE m.segment_id = %s AND m.customer_id = t.id) "
            f"UNION SELECT m.customer_id FROM {membership} m WHERE m.segment_id = %s AND NOT EXISTS "
            f"(SELECT 1 FROM {matching} t WHERE t.id = m.customer_id)",
            (segment.pk, segment.pk),
        )
        candidates = {int(row[0]) for row in cursor.fetchall()}
        cursor.execute(f"DROP TABLE {matching}")
    customers_lock(candidates)
    # Decided again under the locks, at least as late as the batches that took them before us: an event one of
    # them applied after the watermark counts, whatever instant the evaluation was asked to judge.
    decided_at = max(now, timezone.now())
    changes = (
        memberships_decide([(segment, tree, version, candidates)], decided_at, recorded_at=now) if candidates else []
    )
    if segment.is_live:
        entries_publish({segment.pk: segment}, now, hooks=False)  # entries recorded before it was live
        if needs.windows:
            time_windows_schedule([(segment, tree, version, None)], now)
    return len([c for c in changes if c.kind == ENTERED]), len([c for c in changes if c.kind == EXITED])


FAILURE_TEXT_LIMIT = 1000


def evaluation_failure_reason(failure: BaseException) -> str:
    """What a failed evaluation says about itself: an invalid tree names the bad node; anything else its kind and
    message (the database's own words, not the "current transaction is aborted" a later statement would add)."""
    reason = str(failure) if isinstance(failure, InvalidCondition) else f"{type(failure).__name__}: {failure}"
    return reason.strip()[:FAILURE_TEXT_LIMIT]


def segment_evaluation_failed(*, segment: Segment, failure: BaseException, at: datetime) -> None:
    """Record that evaluating the segment failed: since when (the first failure of a run of them) and why (the
    latest). The UI and API show it until an evaluation succeeds."""
    Segment.objects.filter(pk=segment.pk).update(
        evaluation_failing_since=Coalesce(F("evaluation_failing_since"), Value(at)),
        evaluation_error=evaluation_failure_reason(failure),
    )
