"""Celery entry point of the trial loop: the beat sweep of trials that time alone changes."""

from __future__ import annotations

from config.jobs import periodic_job
from trials.loop.lifecycle import trials_sweep


@periodic_job(
    task="trials.tasks.sweep_trials",
    name="trial loop sweep",
    every=300,
    lock="trial sweep",
    description="Moves due trials on by time alone: habit window closed, trial ended (recover), win-back "
    "window over (lost), behaviour score decayed; creates trials for trialing subscriptions not yet seen.",
)
def sweep_trials() -> dict[str, int]:
    """Periodic: trial stages and scores that time alone changes (due trials only)."""
    return trials_sweep()
