"""`manage.py sync_roles`: create the Admin, Growth, CS and Sales rep groups with their permissions."""

from typing import Any

from django.core.management.base import BaseCommand

from config.services import roles_sync


class Command(BaseCommand):
    help = "Create or update the role groups (Admin, Growth, CS, Sales rep) and their permissions. Idempotent."

    def handle(self, *args: Any, **options: Any) -> None:
        for role, count in roles_sync().items():
            self.stdout.write(f"{role}: {count} permissions")
