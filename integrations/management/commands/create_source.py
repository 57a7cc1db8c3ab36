"""`manage.py create_source NAME`: a new event source; prints its write key and its secret key (the only time
they are shown): the write key on the first line, the secret key on the second."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audiences.models import Source
from audiences.services import source_create


class Command(BaseCommand):
    help = (
        "Create an event source; print its write key (first line) and its secret key (second line, for your "
        "servers only)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--kind", choices=Source.Kind.values, default=Source.Kind.TRACKING_API)

    def handle(self, *args: Any, **options: Any) -> None:
        if Source.objects.filter(name__iexact=options["name"].strip()).exists():
            raise CommandError(f"A source named {options['name']!r} already exists.")
        source, write_key = source_create(name=options["name"], kind=options["kind"])
        self.stdout.write(write_key)
        self.stdout.write(source.secret_key)
