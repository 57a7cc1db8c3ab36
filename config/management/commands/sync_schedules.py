"""`manage.py sync_schedules`: write the periodic jobs the apps declare (config.schedules) into beat's tables."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from config.schedules import schedules_sync


class Command(BaseCommand):
    help = "Create, update or remove Trialloop's beat entries to match the declared periodic jobs. Idempotent."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--reset", action="store_true", help="also restore declared intervals and re-enable disabled entries"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = schedules_sync(reset=options["reset"])
        for kind, names in report.items():
            if names:
                self.stdout.write(f"{kind}: {', '.join(names)}")
