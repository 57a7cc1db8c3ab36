"""`manage.py customer_erase ID [--user-id U] [--keep-accepting-events] --yes`: erase a customer everywhere."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audiences.management.commands._customer_argument import add_customer_arguments, customer_from_options
from audiences.privacy.erase import AlreadyErased, customer_erase


class Command(BaseCommand):
    help = "Erase a customer and every row about them (GDPR erasure request); tombstones their ids by default."

    def add_arguments(self, parser: ArgumentParser) -> None:
        add_customer_arguments(parser)
        parser.add_argument(
            "--keep-accepting-events",
            action="store_true",
            help="Do not tombstone the ids: later calls under them create a new profile.",
        )
        parser.add_argument("--yes", action="store_true", help="Confirm: the erasure cannot be undone.")

    def handle(self, *args: Any, **options: Any) -> None:
        customer = customer_from_options(options)
        if not options["yes"]:
            raise CommandError(f"Erasing customer {customer.pk} cannot be undone; add --yes to confirm.")
        try:
            report = customer_erase(
                customer=customer,
                actor=None,
                via="command",
                suppress_future_events=not options["keep_accepting_events"],
            )
        except AlreadyErased as gone:
            raise CommandError(str(gone)) from gone
        for label, number in sorted(report.deleted_rows.items()):
            self.stdout.write(f"{label}: {number}")
        for label, number in sorted(report.redacted_rows.items()):
            self.stdout.write(f"{label}: {number} redacted")
        self.stdout.write(
            f"Customer {customer.pk} erased ({sum(report.deleted_rows.values())} rows deleted, "
            f"{sum(report.redacted_rows.values())} redacted)."
        )
