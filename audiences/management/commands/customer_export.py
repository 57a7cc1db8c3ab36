"""`manage.py customer_export ID [--user-id U] [--output FILE]`: everything about one customer as JSON."""

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand

from audiences.management.commands._customer_argument import add_customer_arguments, customer_from_options
from audiences.privacy.export import customer_export


class Command(BaseCommand):
    help = "Export everything held about a customer (GDPR access request) as JSON, to stdout or a file."

    def add_arguments(self, parser: ArgumentParser) -> None:
        add_customer_arguments(parser)
        parser.add_argument("--output", help="Write to this file instead of standard output.")

    def handle(self, *args: Any, **options: Any) -> None:
        customer = customer_from_options(options)
        body = json.dumps(customer_export(customer), indent=2, ensure_ascii=False)
        if options["output"]:
            Path(options["output"]).write_text(body + "\n", encoding="utf-8")
            self.stderr.write(f"Customer {customer.pk} exported to {options['output']}.")
        else:
            self.stdout.write(body)
