"""Celery entry points of the segments app; each calls one service."""

from __future__ import annotations

from celery import shared_task

from config.services import task_run_recorded
from segments.models import Segment
from segments.services import segment_evaluate


@shared_task(name="segments.tasks.evaluate_segments")
def evaluate_segments() -> dict[str, int]:
    """Periodic: re-evaluate every segment (time-based conditions move on their own); each run is locked
    per segment, so a slow evaluation is never overlapped by the next tick."""
    with task_run_recorded("segment evaluation") as run:
        totals = {"segments": 0, "entered": 0, "exited": 0}
        for segment in Segment.objects.order_by("pk"):
            result = segment_evaluate(segment=segment)
            totals["segments"] += 1
            totals["entered"] += result.entered
            totals["exited"] += result.exited
        run.detail = totals
        return totals
