"""Writes on segments: saving a validated tree, and evaluating membership as a set-based difference."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection, transaction
from django.db.models import Count, F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from audiences.models import Customer
from config.services import task_lock
from segments.conditions import Group, InvalidCondition, parse_tree, to_json
from segments.live.compiled import compiled_members
from segments.live.dependencies import dependencies
from segments.live.membership import customers_lock, memberships_decide, time_windows_schedule
from segments.live.publish import ENTERED, EXITED, entries_publish
from segments.models import Segment, SegmentMembership, SegmentTag, SegmentVersion


@transaction.atomic
def segment_save(
    *,
    name: str,
    conditions: Any,
    description: str = "",
    tags: Iterable[str] = (),
    owner: AbstractBaseUser | AnonymousUser | None = None,
    segment: Segment | None = None,
    note: str = "",
) -> Segment:
    """Create or update a segment; the tree is validated first (InvalidCondition names the bad leaf).

    Every change that alters the segment is kept as a numbered version with its author. A changed definition
    re-evaluates, as soon as the change commits, the segment itself when it is a live audience and every segment
    referring to it (a task each), so they follow the change with the latency of a live change, not the next
    periodic evaluation.
    """
    tree = parse_tree(conditions, segment_id=segment.pk if segment is not None else None)
    definition_changed = segment is not None and segment.conditions != to_json(tree)
    segment = segment or Segment()
    segment.name, segment.description, segment.conditions = name.strip(), description, to_json(tree)
    author = owner.pk if owner is not None and owner.is_authenticated else None
    if segment.owner_id is None and author is not None:
        segment.owner_id = author
    segment.save()
    tag_names = sorted({tag.strip() for tag in tags if tag.strip()})
    segment.tags.set([SegmentTag.objects.get_or_create(name=tag)[0] for tag in tag_names])
    latest = segment.versions.order_by("-number").first()
    state = (segment.name, segment.description, tag_names, segment.conditions)
    if latest is None or (latest.name, latest.description, latest.tags, latest.conditions) != state:
        SegmentVersion.objects.create(
            segment=segment,
            number=(latest.number + 1) if latest else 1,
            name=segment.name,
            description=segment.description,
            tags=tag_names,
            conditions=segment.conditions,
            author_id=author,
            note=note,
        )
    if definition_changed:
        affected = ([segment.pk] if segment.is_live else []) + segments_referencing(segment.pk)
        transaction.on_commit(lambda: _queue_evaluations(affected))
    return segment


def segments_referencing(segment_id: int) -> list[int]:
    """The segments whose conditions read this one, directly or through others (their trees inline its tree when
    parsed, so a change of its definition changes their members too). Segments are few: their conditions are
    read once and walked here."""
    reads: dict[int, set[int]] = {}
    for pk, conditions in Segment.objects.values_list("pk", "conditions"):
        reads[pk] = _referenced_ids(conditions)
    found: set[int] = set()
    frontier = {segment_id}
    while frontier:
        frontier = {pk for pk, ids in reads.items() if ids & frontier and pk not in found and pk != segment_id}
        found |= frontier
    return sorted(found)


def _referenced_ids(raw: Any) -> set[int]:
    if isinstance(raw, dict):
        found = {raw["segment"]} if raw.get("type") == "segment" and isinstance(raw.get("segment"), int) else set()
        for child in raw.get("children") or ():
            found |= _referenced_ids(child)
        return found
    return set()


def _queue_evaluations(segment_ids: list[int]) -> None:
    from segments.tasks import evaluate_segment  # same app: the tasks module imports this one

    for segment_id in segment_ids:
        evaluate_segment.delay(segment_id)


def segment_version_restore(*, version: SegmentVersion, author: AbstractBaseUser | AnonymousUser | None) -> Segment:
    """Make an earlier version current again (recorded as a new version)."""
    return segment_save(
        segment=version.segment,
        name=version.name,
        description=version.description,
        tags=version.tags,
        conditions=version.conditions,
        owner=author,
        note=f"restored version {version.number}",
    )


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


class NotATestCustomer(ValueError):
    """Only customers flagged as test customers may be forced into a draft."""


@transaction.atomic
def segment_draft_save(
    *,
    segment: Segment,
    conditions: Any,
    test_customer_ids: Iterable[int] = (),
    author: AbstractBaseUser | AnonymousUser | None = None,
) -> Segment:
    """Keep an unpublished edit (test mode): validated like a publish, invisible to live membership."""
    tree = parse_tree(conditions, segment_id=segment.pk)
    wanted = set(test_customer_ids)
    flagged = set(Customer.objects.filter(pk__in=wanted, is_test=True).values_list("pk", flat=True))
    if wanted - flagged:
        raise NotATestCustomer(
            f"Only test customers can be forced into a draft; not flagged as test: {sorted(wanted - flagged)}"
        )
    segment.draft_conditions = to_json(tree)
    segment.draft_author_id = author.pk if author is not None and author.is_authenticated else None
    segment.draft_updated_at = timezone.now()
    segment.save(update_fields=["draft_conditions", "draft_author", "draft_updated_at", "updated_at"])
    segment.draft_test_customers.set(flagged)
    return segment


@transaction.atomic
def segment_draft_discard(*, segment: Segment) -> None:
    """Drop the draft; the live segment is as it was."""
    Segment.objects.filter(pk=segment.pk).update(draft_conditions=None, draft_author=None, draft_updated_at=None)
    segment.draft_test_customers.clear()
    segment.draft_conditions = None


def segment_draft_publish(*, segment: Segment, author: AbstractBaseUser | AnonymousUser | None) -> Evaluation:
    """Make the draft live: a new version, the draft cleared, membership re-evaluated."""
    if segment.draft_conditions is None:
        raise ValueError("This segment has no draft to publish.")
    published = segment_save(
        segment=segment,
        name=segment.name,
        description=segment.description,
        tags=list(segment.tags.values_list("name", flat=True)),
        conditions=segment.draft_conditions,
        owner=author,
        note="published draft",
    )
    segment_draft_discard(segment=published)
    return segment_evaluate(segment=published)
