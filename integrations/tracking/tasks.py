"""Celery entry points of the intake layer (registered under their old names, which queues and beat rows use)."""

from __future__ import annotations

from celery import shared_task

from integrations.tracking.imports import import_job_run
from integrations.tracking.models import ImportJob


@shared_task(name="integrations.tasks.run_import")
def run_import(job_id: int) -> int:
    """Run (or resume) an import job; returns the rows processed so far."""
    job = ImportJob.objects.select_related("source").get(pk=job_id)
    if job.status == ImportJob.Status.DONE:
        return job.processed_rows
    return import_job_run(job=job).processed_rows
