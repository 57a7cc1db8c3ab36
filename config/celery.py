"""The Celery application. Tasks are thin doors into services; periodic jobs are declared with
config.jobs.periodic_job next to their code, and registered in config.schedules."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger

from config.log_redaction import add_redaction

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("trialloop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _redact_worker_logs(logger: Any, **kwargs: Any) -> None:
    """Celery replaces the root logger's handlers in workers: give its handlers the redaction filter too."""
    add_redaction(logger)
