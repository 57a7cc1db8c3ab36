"""`manage.py import_events FILE`: import historical events (or customers) from CSV or NDJSON, with progress."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audiences.models import Source
from audiences.services import source_create
from integrations.tracking.imports import ImportRejected, import_job_create, import_job_run
from integrations.tracking.models import ImportJob


class Command(BaseCommand):
    help = "Import a CSV or NDJSON file of events or customers. Re-running stores nothing twice."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", nargs="?", help="path of a .csv, .ndjson or .jsonl file")
        parser.add_argument("--kind", choices=ImportJob.Kind.values, default=ImportJob.Kind.EVENTS)
        parser.add_argument("--source", default="Import", help="source name (created if missing)")
        parser.add_argument("--resume", type=int, metavar="JOB_ID", help="continue a job that stopped")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["resume"]:
            job = ImportJob.objects.select_related("source").filter(pk=options["resume"]).first()
            if job is None:
                raise CommandError(f"No import job {options['resume']}.")
        else:
            if not options["file"]:
                raise CommandError("Give a file to import, or --resume JOB_ID.")
            path = Path(options["file"]).resolve()
            if not path.is_file():
                raise CommandError(f"No such file: {path}")
            source = Source.objects.filter(name=options["source"]).first()
            if source is None:
                source, _ = source_create(name=options["source"], kind=Source.Kind.IMPORT)
            try:
                job = import_job_create(source=source, kind=options["kind"], path=path, original_name=path.name)
            except ImportRejected as error:
                raise CommandError(str(error)) from error
        self.stdout.write(f"Import job {job.pk}: {job.total_rows:,} rows of {job.kind} from {job.original_name}")
        try:
            import_job_run(job=job, on_progress=self._progress)
        except Exception as error:
            raise CommandError(f"{error}. Resume with: manage.py import_events --resume {job.pk}") from error
        self.stdout.write("")
        self.stdout.write(
            f"Done: {job.stored:,} stored, {job.duplicates:,} already there, {job.rejected_count:,} rejected."
        )
        for row in job.rejected[:20]:
            self.stdout.write(f"  row {row['row']}: {row['error']}")

    def _progress(self, job: ImportJob) -> None:
        width = 30
        filled = width * job.percent // 100
        bar = "#" * filled + "-" * (width - filled)
        self.stdout.write(f"\r[{bar}] {job.percent:3d}%  {job.processed_rows:,}/{job.total_rows:,} rows", ending="")
        self.stdout.flush()
