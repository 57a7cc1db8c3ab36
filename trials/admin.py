"""Back-office registrations (Admin role) for the trial loop, lifecycle messages and the sales-assist plays (the
billing catalogue and subscriptions are registered by integrations.stripe.admin)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from trials.models import (
    ActivationDefinition,
    Alert,
    BusinessHours,
    EmailSettings,
    FitRule,
    Holiday,
    MessageSend,
    MessageTemplate,
    Play,
    RepProfile,
    ScoreSettings,
    Trial,
    TrialStageChange,
)


@admin.register(Trial)
class TrialAdmin(admin.ModelAdmin[Trial]):
    list_display = ["customer", "stage", "model", "started_at", "ends_at", "fit_score", "pql_score", "is_current"]
    list_filter = ["stage", "model", "is_current"]
    raw_id_fields = ["customer", "subscription"]


@admin.register(TrialStageChange)
class TrialStageChangeAdmin(admin.ModelAdmin[TrialStageChange]):
    list_display = ["trial", "from_stage", "to_stage", "changed_at"]
    raw_id_fields = ["trial", "customer"]


admin.site.register(ActivationDefinition)


@admin.register(FitRule)
class FitRuleAdmin(admin.ModelAdmin[FitRule]):
    """Label, points and the condition tree (JSON in the segment language)."""

    list_display = ["label", "points", "condition"]
    fields = ["label", "points", "condition"]


admin.site.register(ScoreSettings)
admin.site.register(EmailSettings)
admin.site.register(BusinessHours)
admin.site.register(Holiday)


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin[MessageTemplate]):
    list_display = ["key", "name", "channel", "trigger", "priority", "active", "holdout_percent"]
    list_filter = ["channel", "trigger", "active"]


@admin.register(MessageSend)
class MessageSendAdmin(admin.ModelAdmin[MessageSend]):
    """The send log, read-only: it is the record of what was sent and why not."""

    list_display = ["created_at", "template", "customer", "status", "reason", "sent_at"]
    list_filter = ["status", "template"]
    list_select_related = ["template", "customer"]
    raw_id_fields = ["customer"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: MessageSend | None = None) -> bool:
        return False


@admin.register(Play)
class PlayAdmin(admin.ModelAdmin[Play]):
    list_display = ["key", "name", "target", "priority", "sla_business_hours", "active", "test_mode", "holdout_percent"]
    list_filter = ["active", "test_mode", "target"]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin[Alert]):
    list_display = ["pk", "play", "customer", "status", "assignee", "due_at", "outcome"]
    list_filter = ["status", "play", "outcome"]
    list_select_related = ["play", "customer", "assignee"]
    raw_id_fields = ["customer", "account"]
    show_full_result_count = False


@admin.register(RepProfile)
class RepProfileAdmin(admin.ModelAdmin[RepProfile]):
    list_display = ["user", "away"]
