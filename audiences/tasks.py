"""Celery entry points of the audiences app; each calls one service."""

from __future__ import annotations

from celery import shared_task

from audiences.ingestion import profiles_apply_events


@shared_task(name="audiences.tasks.apply_events_to_profiles", acks_late=True)
def apply_events_to_profiles(event_ids: list[int]) -> int:
    """Profile effects of a stored batch (traits, accounts, first/last seen); safe to run twice."""
    return profiles_apply_events(event_ids=event_ids)
