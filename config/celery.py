"""The Celery application. Tasks are thin doors into services; schedules live in config/schedules.py."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("trialloop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
