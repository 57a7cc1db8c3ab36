"""The customer argument shared by the GDPR commands: a row id, or `--user-id`."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from audiences.models import Customer


def add_customer_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("customer_id", nargs="?", type=int, help="The customer's row id.")
    parser.add_argument("--user-id", help="Find the customer by the product's user id instead.")


def customer_from_options(options: dict[str, Any]) -> Customer:
    """The one customer the options name, or a CommandError saying what is wrong."""
    if (options["customer_id"] is None) == (options["user_id"] is None):
        raise CommandError("Give either a customer id or --user-id.")
    lookup = {"pk": options["customer_id"]} if options["customer_id"] is not None else {"user_id": options["user_id"]}
    try:
        return Customer.objects.get(**lookup)
    except Customer.DoesNotExist as missing:
        raise CommandError(f"No customer with {next(iter(lookup))}={next(iter(lookup.values()))!r}.") from missing
