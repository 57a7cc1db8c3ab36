"""Celery entry point of computed traits: the backfill of a new or changed definition (its name is the one it had
in audiences.tasks, which queued messages and the queue routes use)."""

from __future__ import annotations

from celery import shared_task

from audiences.models import ComputedTrait
from config.locks import task_lock
from segments.traits.evaluation import computed_trait_backfill


@shared_task(name="audiences.tasks.backfill_computed_trait", acks_late=True)
def backfill_computed_trait(trait_id: int) -> int:
    """Compute a new or changed definition from history (one run per trait at a time)."""
    with task_lock(f"computed-trait-backfill:{trait_id}") as acquired:
        trait = ComputedTrait.objects.filter(pk=trait_id).first()
        if not acquired or trait is None:
            return 0
        return computed_trait_backfill(trait=trait)
