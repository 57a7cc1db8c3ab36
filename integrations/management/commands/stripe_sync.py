"""`manage.py stripe_sync`: backfill the catalogue, customers, subscriptions and charges from the Stripe API."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from integrations.stripe.api import StripeNotConfigured, stripe_client
from integrations.stripe.sync import COLLECTIONS, stripe_sync_run


class Command(BaseCommand):
    help = "Pull Stripe objects through the API (resumes an interrupted run; --restart starts over)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--restart", action="store_true", help="ignore where the last run stopped")
        parser.add_argument(
            "--only", default=",".join(COLLECTIONS), help=f"comma-separated subset of: {', '.join(COLLECTIONS)}"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        collections = tuple(name.strip() for name in options["only"].split(",") if name.strip())
        unknown = [name for name in collections if name not in COLLECTIONS]
        if unknown:
            raise CommandError(f"Unknown collection(s): {', '.join(unknown)}.")
        try:
            client = stripe_client()
        except StripeNotConfigured as missing:
            raise CommandError(str(missing)) from missing
        report = stripe_sync_run(
            client=client, collections=collections, restart=options["restart"], on_progress=self._progress
        )
        self.stdout.write("")
        for collection, count in report.applied.items():
            self.stdout.write(f"{collection:<14} {count:>8,}")
        self.stdout.write(f"skipped (customer not linked): {report.skipped_unlinked:,}")
        self.stdout.write(f"customers refreshed: {report.customers_refreshed:,}")

    def _progress(self, collection: str, count: int) -> None:
        self.stdout.write(f"\r{collection}: {count:,} objects", ending="")
        self.stdout.flush()
