"""Face for Celery autodiscovery: the trials app's tasks live in its packages, next to their services.

Each keeps its old name (`trials.tasks.<fn>`), which config/schedules.py, beat rows and queued messages use.
Code imports a task from its package module, not from here.
"""

from trials.loop.tasks import sweep_trials
from trials.messaging.delivery import deliver_message
from trials.messaging.realtime import trigger_messages
from trials.messaging.tasks import sweep_messages
from trials.plays.tasks import evaluate_plays

__all__ = ["deliver_message", "evaluate_plays", "sweep_messages", "sweep_trials", "trigger_messages"]
