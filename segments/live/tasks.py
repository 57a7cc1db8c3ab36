"""Celery entry point of live audiences' time sweep (its name is the one it had in audiences.tasks, which the beat
schedule and the queue routes use)."""

from __future__ import annotations

from config.jobs import periodic_job
from segments.live.sweep import time_sweep


@periodic_job(
    task="audiences.tasks.sweep_time",
    name="live audience time sweep",
    every=60,
    lock="time sweep",
    description="Decays windowed computed traits and re-evaluates live audiences whose conditions depend on "
    "time (within the last N days, trial ends in N days).",
)
def sweep_time() -> dict[str, int]:
    """Periodic: what time alone changes — decayed computed traits, time-based live audiences."""
    return time_sweep()
