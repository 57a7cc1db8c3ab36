"""App configs for the project package itself and for a Django admin restricted to the Admin role."""

from typing import Any

from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig
from django.db.models.signals import post_migrate


class ProjectConfig(AppConfig):
    """Cross-cutting parts: roles, periodic schedules, task runs, the audit log, the staff UI shell and the demo
    data set."""

    name = "config"
    label = "project"
    verbose_name = "Trialloop"

    def ready(self) -> None:
        from config.audit import audit_connect

        post_migrate.connect(sync_after_migrate, sender=self)
        audit_connect()


def sync_after_migrate(sender: AppConfig, **kwargs: Any) -> None:
    """After every `migrate` (and test-database flush): bring role groups and beat entries in line with code."""
    from config.services import roles_sync, schedules_sync

    roles_sync()
    schedules_sync()


class TrialloopAdminConfig(AdminConfig):
    """Django admin, opened only to the Admin role (see config.admin_site.TrialloopAdminSite)."""

    default_site = "config.admin_site.TrialloopAdminSite"
