"""App configs for the project package itself and for a Django admin restricted to the Admin role."""

from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig
from django.db.models.signals import post_migrate
from django.utils.module_loading import autodiscover_modules


class ProjectConfig(AppConfig):
    """Cross-cutting parts: roles, periodic schedules, task runs, the audit log, the staff UI shell and the demo
    data set."""

    name = "config"
    label = "project"
    verbose_name = "Trialloop"

    def ready(self) -> None:
        from config.audit import audit_connect
        from config.services import sync_after_migrate

        # Every app's tasks module declares its periodic jobs (config.jobs.periodic_job registers their beat
        # entries). Importing them here — last of the apps, as Celery's worker does — makes the registry complete
        # in every process (web, beat, migrate) before the sync after `migrate` reads it.
        autodiscover_modules("tasks")
        post_migrate.connect(sync_after_migrate, sender=self, dispatch_uid="project-sync-after-migrate")
        audit_connect()


class TrialloopAdminConfig(AdminConfig):
    """Django admin, opened only to the Admin role (see config.admin_site.TrialloopAdminSite)."""

    default_site = "config.admin_site.TrialloopAdminSite"
