"""`manage.py create_demo_users`: one demo login per role, printed with the URL (used by `make run`)."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from config.services import demo_users_ensure


class Command(BaseCommand):
    help = "Create the demo users (admin, growth, cs, rep1, rep2) if missing and print how to sign in."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="address to print")

    def handle(self, *args: Any, **options: Any) -> None:
        password, users = demo_users_ensure()
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"Trialloop is starting on {options['url']}"))
        self.stdout.write(f"  Sign in as admin / {password}")
        others = ", ".join(f"{name} ({role.value})" for name, role in users if name != "admin")
        self.stdout.write(f"  Other demo users, same password: {others}")
        self.stdout.write("  Stop everything with Ctrl-C.")
        self.stdout.write("")
