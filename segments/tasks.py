"""Celery entry points of the segments app; each calls one service. (The live audiences' and computed traits'
task modules are imported by SegmentsConfig.ready(), so Celery registers them.)"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction

from config.jobs import JobReport, periodic_job
from segments.conditions import InvalidCondition
from segments.evaluation import evaluation_failure_reason, segment_evaluate
from segments.live.publish import audience_members_announce
from segments.models import Segment

logger = logging.getLogger(__name__)


@periodic_job(
    task="segments.tasks.evaluate_segments",
    name="segment evaluation",
    every=300,
    description="Re-evaluates every segment and records who entered and exited.",
)
def evaluate_segments() -> JobReport:
    """Periodic: re-evaluate every segment (time-based conditions move on their own); each run is locked
    per segment, so a slow evaluation is never overlapped by the next tick.

    A segment whose evaluation fails — invalid since a custom property it uses was deleted, or anything else —
    is skipped and the others are evaluated: segment_evaluate runs each in a savepoint and records on the
    segment why it failed (shown in the UI and API); the run record lists the failing segments too."""
    totals = {"segments": 0, "entered": 0, "exited": 0, "failing": 0}
    failing: dict[str, str] = {}
    for segment in Segment.objects.order_by("pk"):
        try:
            result = segment_evaluate(segment=segment)
        except Exception as failure:
            if not isinstance(failure, InvalidCondition):
                logger.exception("segment %s (%s) failed to evaluate", segment.pk, segment.name)
            totals["failing"] += 1
            failing[segment.name] = evaluation_failure_reason(failure)
            continue
        totals["segments"] += 1
        totals["entered"] += result.entered
        totals["exited"] += result.exited
    return JobReport(totals, {**totals, "failing_segments": failing} if failing else dict(totals))


@shared_task(name="segments.tasks.evaluate_segment")
def evaluate_segment(segment_id: int, announce_members: bool = False) -> dict[str, int]:
    """Evaluate one segment now (queued when it becomes a live audience, with `announce_members` so the members
    it already had are published as entered first). An evaluation that changes nothing writes nothing, and a
    segment deleted, made invalid or no longer live meanwhile is skipped."""
    segment = Segment.objects.filter(pk=segment_id).first()
    if segment is None:
        return {}
    announced = 0
    if announce_members and segment.is_live:
        with transaction.atomic():
            announced = audience_members_announce(segment)
    try:
        result = segment_evaluate(segment=segment)
    except InvalidCondition:  # recorded on the segment by segment_evaluate
        return {"invalid": 1, "announced": announced}
    return {"entered": result.entered, "exited": result.exited, "members": result.members, "announced": announced}
