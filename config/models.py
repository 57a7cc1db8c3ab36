"""Abstract model parts shared by the apps, and the bookkeeping of background jobs (runs, lock leases, timers)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TimestampedModel(models.Model):
    """Creation and last-change times on every row, so lists can sort by recency and audits can date changes."""

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class TaskRun(models.Model):
    """One run of a periodic job: proves beat and the worker are alive and shows what the job did."""

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped (another run held the lock)"

    name = models.CharField(max_length=100)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.RUNNING)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["name", "-started_at"], name="taskrun_name_started")]
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.name} @ {self.started_at:%Y-%m-%d %H:%M:%S} ({self.outcome})"


class TaskLock(models.Model):
    """A named lease held by one run of a job at a time, so a slow run never overlaps the next tick.

    The job-lock fallback for databases without advisory locks (SQLite, the embedded default: no Redis either);
    on PostgreSQL job locks are advisory locks and this table stays empty (config.locks).
    """

    name = models.CharField(max_length=100, primary_key=True)
    holder = models.CharField(max_length=64)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder} until {self.expires_at}"


class AuditEntry(models.Model):
    """One configuration change: who made it, when, through which door, and each field's old and new value.

    Written by signal handlers (config.audit) for every model that configures behaviour — segments, rules,
    flows, plays, templates, destinations, sources, users and their roles, secrets — so changes made in the
    UI, the API, the admin or a command are all recorded the same way. Secrets appear only as "changed".
    Entries are never edited or deleted by the application.
    """

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        CHANGED = "changed", "Changed"
        DELETED = "deleted", "Deleted"

    at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    actor_name = models.CharField(max_length=150, blank=True, help_text="The username then (kept if the user goes).")
    via = models.CharField(max_length=10, help_text="ui, api, admin or system (commands, jobs, migrations)")
    action = models.CharField(max_length=7, choices=Action.choices)
    model = models.CharField(max_length=100, help_text="app_label.ModelName")
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    changes = models.JSONField(default=dict, help_text="field -> [old, new]")

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["model", "object_id", "-at"], name="audit_object")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name or 'system'} {self.action} {self.model} {self.object_id}"


class Timer(models.Model):
    """A durable timer: at `due_at`, the handler registered for `kind` is called once with the timer's payload.

    Celery's own countdowns live in the broker and die with a worker restart or a lost message, and a sweep
    every N seconds is N seconds late; a row is neither. Rows are claimed with a conditional UPDATE (SKIP LOCKED
    on PostgreSQL) under a lease, so concurrent workers never fire one timer twice, and a worker that dies
    between claim and completion only delays the timer until the lease expires (config.timers).
    """

    kind = models.CharField(max_length=100, help_text="Which registered handler fires it.")
    key = models.CharField(max_length=255, unique=True, help_text="Unique per timer: scheduling again moves it.")
    due_at = models.DateTimeField()
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    fired_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True, default="")
    claimed_until = models.DateTimeField(null=True, blank=True)
    queued_for = models.DateTimeField(
        null=True, blank=True, help_text="The due time an on-time Celery message was queued for."
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    failed_at = models.DateTimeField(null=True, blank=True, help_text="Set when the last retry failed too.")

    class Meta:
        indexes = [
            models.Index(
                fields=["due_at"],
                name="timer_pending_due",
                condition=models.Q(fired_at__isnull=True, failed_at__isnull=True),
            ),
            models.Index(fields=["fired_at"], name="timer_fired"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} @ {self.due_at:%Y-%m-%d %H:%M:%S}"
