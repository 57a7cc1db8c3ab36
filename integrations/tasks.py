"""Face for Celery's autodiscovery, which looks in `<app>.tasks`: it imports the task modules of the Stripe mirror,
the tracking intake and the outbound destinations, whose tasks keep their `integrations.tasks.<name>` names (beat
rows and queued messages use them). Code imports a task from its package module, not from here."""

from integrations.destinations import tasks as destination_tasks
from integrations.stripe import tasks as stripe_tasks
from integrations.tracking import tasks as tracking_tasks

TASK_MODULES = (stripe_tasks, tracking_tasks, destination_tasks)
