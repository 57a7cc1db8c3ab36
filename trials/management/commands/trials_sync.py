"""`manage.py trials_sync [--chunk N]`: trials from history, for data loaded without the stored-batch hook."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from trials.loop.lifecycle import trials_backfill


class Command(BaseCommand):
    help = "Create and refresh trials (stage, fit and PQL scores) from trial subscriptions and signup events."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--chunk", type=int, default=500, help="Customers per transaction.")

    def handle(self, *args: Any, **options: Any) -> None:
        count = trials_backfill(chunk=options["chunk"])
        self.stdout.write(f"Processed {count} customers.")
