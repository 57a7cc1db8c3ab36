"""Writes on segments: saving a validated tree (a new version), restoring a version, drafts and publishing one —
the one path for the pages, the staff API, the admin and the commands. Evaluating membership is
segments.evaluation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from audiences.models import Customer
from segments.conditions import parse_tree, to_json
from segments.evaluation import Evaluation, segment_evaluate
from segments.models import Segment, SegmentTag, SegmentVersion
from segments.tasks import evaluate_segment


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
    """Drop the draft; the live segment is as it was. Saved through the instance, so the audit log records it
    (a QuerySet.update() would bypass it) whichever door discards: the page, the API, publishing."""
    segment.draft_conditions, segment.draft_author, segment.draft_updated_at = None, None, None
    segment.save(update_fields=["draft_conditions", "draft_author", "draft_updated_at", "updated_at"])
    segment.draft_test_customers.clear()


@transaction.atomic
def segment_delete(*, segment: Segment) -> None:
    """Delete a segment with its memberships, history and versions (they cascade); the one door for deleting,
    recorded by the audit log."""
    segment.delete()


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
