"""Celery entry points of lifecycle messaging that stand alone: the periodic sweep.

The delivery and real-time trigger tasks live next to the service that queues them (trials.messaging.delivery,
trials.messaging.realtime), so queuing one never imports a module above it; trials/tasks.py names them all
for autodiscovery.
"""

from __future__ import annotations

from config.jobs import periodic_job
from trials.messaging.decide import messages_sweep


@periodic_job(
    task="trials.tasks.sweep_messages",
    name="lifecycle message sweep",
    every=300,
    lock="message sweep",
    description="Sends lifecycle emails whose trigger (event, audience, trial day N, trial ends in N hours) "
    "and conditions hold, one per customer per window, by priority; logs every suppression.",
)
def sweep_messages() -> dict[str, int]:
    """Periodic: lifecycle emails whose trigger and conditions hold now (throttled per customer)."""
    return messages_sweep()
