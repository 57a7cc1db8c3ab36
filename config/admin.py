"""Back-office registrations of the project's own models: job runs, durable timers and the audit log (read-only)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from config.models import AuditEntry, TaskRun, Timer


@admin.register(TaskRun)
class TaskRunAdmin(admin.ModelAdmin[TaskRun]):
    list_display = ["name", "started_at", "finished_at", "outcome"]
    list_filter = ["name", "outcome"]
    readonly_fields = ["name", "started_at", "finished_at", "outcome", "detail"]


@admin.register(Timer)
class TimerAdmin(admin.ModelAdmin[Timer]):
    """Durable timers, to see what is due and why one failed (config.timers); read-only, the code schedules them."""

    list_display = ["key", "kind", "due_at", "fired_at", "attempts", "failed_at"]
    list_filter = ["kind"]
    search_fields = ["=key"]
    readonly_fields = [
        "kind", "key", "due_at", "payload", "created_at", "fired_at", "claim_token", "claimed_until", "queued_for",
        "attempts", "last_error", "failed_at",
    ]  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin[AuditEntry]):
    """The audit log in the back office: read-only; nobody edits or deletes what was recorded."""

    list_display = ["at", "actor_name", "via", "action", "model", "object_id", "object_repr"]
    list_filter = ["via", "action", "model"]
    search_fields = ["=object_id", "actor_name"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False
