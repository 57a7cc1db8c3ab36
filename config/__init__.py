"""Project package: settings, URLs, the Celery app and the cross-cutting parts every app shares."""

from config.celery import app as celery_app

__all__ = ["celery_app"]
