"""Celery entry points of the audiences app; each calls one service."""

from __future__ import annotations

from celery import shared_task

from audiences.computed_traits import computed_trait_backfill
from audiences.models import ComputedTrait
from audiences.pipeline import stored_events_process, time_sweep
from config.models import TaskRun
from config.services import task_lock, task_run_recorded


@shared_task(name="audiences.tasks.apply_events_to_profiles", acks_late=True)
def apply_events_to_profiles(event_ids: list[int]) -> int:
    """A stored batch's effects: profiles (traits, accounts, first/last seen), computed traits and live
    audiences, with their outbound messages; safe to run twice. Returns how many customers it touched."""
    return stored_events_process(event_ids=event_ids).customers


@shared_task(name="audiences.tasks.backfill_computed_trait", acks_late=True)
def backfill_computed_trait(trait_id: int) -> int:
    """Compute a new or changed definition from history (one run per trait at a time)."""
    with task_lock(f"computed-trait-backfill:{trait_id}") as acquired:
        trait = ComputedTrait.objects.filter(pk=trait_id).first()
        if not acquired or trait is None:
            return 0
        return computed_trait_backfill(trait=trait)


@shared_task(name="audiences.tasks.sweep_time")
def sweep_time() -> dict[str, int]:
    """Periodic: what time alone changes — decayed computed traits, time-based live audiences."""
    with task_lock("time sweep") as acquired, task_run_recorded("live audience time sweep") as run:
        if not acquired:
            run.outcome = TaskRun.Outcome.SKIPPED
            return {}
        run.detail = time_sweep()
        return dict(run.detail)
