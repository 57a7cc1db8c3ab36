"""Back-office registrations (Admin role) for the catalogue, subscriptions, the trial loop, lifecycle messages
and the sales-assist plays."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from integrations.stripe.models import AddOn, Plan, Product, Subscription, SubscriptionAddOn
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


class PlanInline(admin.TabularInline[Plan, Product]):
    model = Plan
    extra = 0


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin[Product]):
    list_display = ["name", "stripe_product_id", "active"]
    search_fields = ["name", "=stripe_product_id"]
    inlines = [PlanInline]


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin[Plan]):
    list_display = ["name", "product", "amount_cents", "currency", "interval", "interval_count", "usage_type"]
    list_filter = ["interval", "usage_type", "active"]
    list_select_related = ["product"]


@admin.register(AddOn)
class AddOnAdmin(admin.ModelAdmin[AddOn]):
    list_display = ["name", "product", "amount_cents", "currency", "interval", "usage_type"]


class SubscriptionAddOnInline(admin.TabularInline[SubscriptionAddOn, Subscription]):
    model = SubscriptionAddOn
    extra = 0


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin[Subscription]):
    list_display = ["id", "customer", "plan", "status", "quantity", "trial_end", "mrr_cents"]
    list_filter = ["status", "cancel_at_period_end"]
    search_fields = ["=stripe_subscription_id", "=customer__email", "=customer__user_id"]
    list_select_related = ["customer", "plan"]
    raw_id_fields = ["customer"]
    readonly_fields = ["mrr_cents", "stripe_state_at"]
    inlines = [SubscriptionAddOnInline]
    show_full_result_count = False


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
admin.site.register(FitRule)
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
