"""Writes on segments: saving a validated tree, and evaluating membership as a set-based difference."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from audiences.live import changes_record
from audiences.models import Customer
from config.services import task_lock
from segments.compiler import compile_tree
from segments.conditions import InvalidCondition, parse_tree, to_json
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

    Every change that alters the segment is kept as a numbered version with its author.
    """
    tree = parse_tree(conditions, segment_id=segment.pk if segment is not None else None)
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
    return segment


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


def _members_sql(segment: Segment, now: datetime) -> tuple[str, tuple[Any, ...]]:
    tree = parse_tree(segment.conditions, segment_id=segment.pk)
    matching = Customer.objects.filter(compile_tree(tree, now)).values("id")
    sql, params = matching.query.sql_with_params()
    return sql, tuple(params)


def segment_evaluate(*, segment: Segment, now: datetime | None = None) -> Evaluation:
    """Bring the materialised membership in line with the conditions, writing only the difference.

    The compiled query runs once, into a temporary table of matching ids; set-based statements then insert who
    entered (matching, not yet a member) and delete who exited (a member, no longer matching), and the rows they
    actually changed are recorded as history — and, for a live audience, published (audiences.live). An
    evaluation that changes nothing writes no membership or history rows. Runs under a per-segment lock so two
    evaluations of the same segment never overlap.

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
                members, entered, exited = _membership_refresh(segment, now)
        except Exception as failure:
            segment_evaluation_failed(segment=segment, failure=failure, at=now)
            raise
        elapsed = round((time.monotonic() - started) * 1000)
        Segment.objects.filter(pk=segment.pk).update(
            member_count=members,
            last_evaluated_at=now,
            last_evaluation_ms=elapsed,
            evaluation_failing_since=None,
            evaluation_error="",
        )
    return Evaluation(entered=entered, exited=exited, members=members, milliseconds=elapsed)


def _membership_refresh(segment: Segment, now: datetime) -> tuple[int, int, int]:
    """The set-based difference of segment_evaluate; to be run inside a transaction. Members, entered, exited."""
    members_sql, params = _members_sql(segment, now)
    membership = SegmentMembership._meta.db_table
    matching = f"segment_matching_{segment.pk}"
    at = connection.ops.adapt_datetimefield_value(now)
    new_members = (
        f"SELECT t.id FROM {matching} t WHERE NOT EXISTS "
        f"(SELECT 1 FROM {membership} m WHERE m.segment_id = %s AND m.customer_id = t.id)"
    )
    gone = (
        f"SELECT m.customer_id FROM {membership} m WHERE m.segment_id = %s AND NOT EXISTS "
        f"(SELECT 1 FROM {matching} t WHERE t.id = m.customer_id)"
    )
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {matching} (id bigint PRIMARY KEY)")
        cursor.execute(f"INSERT INTO {matching} (id) {members_sql}", params)
        members = cursor.rowcount
        # ON CONFLICT / RETURNING: a live audience's real-time path may have written some of these rows
        # meanwhile; only what this statement changed is recorded (WHERE true: SQLite's grammar needs it).
        cursor.execute(
            f"INSERT INTO {membership} (segment_id, customer_id, entered_at) "
            f"SELECT %s, id, %s FROM ({new_members}) e WHERE true "
            "ON CONFLICT (segment_id, customer_id) DO NOTHING RETURNING customer_id",
            (segment.pk, at, segment.pk),
        )
        entered = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            f"DELETE FROM {membership} WHERE segment_id = %s AND customer_id IN ({gone}) RETURNING customer_id",
            (segment.pk, segment.pk),
        )
        exited = [row[0] for row in cursor.fetchall()]
        cursor.execute(f"DROP TABLE {matching}")
    changes_record({segment.pk: segment}, [(segment.pk, c) for c in entered], [(segment.pk, c) for c in exited], now)
    return members, len(entered), len(exited)


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
