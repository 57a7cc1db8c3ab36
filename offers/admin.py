"""Back office (Admin role): cancellation sessions with their recorded steps, and win-back emails, read-only.

Offers, rules and flows are edited on the staff pages, where an offer's parameters are validated for its kind.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from offers.models import CancellationSession, SessionStep, WinBackEmail


class SessionStepInline(admin.TabularInline[SessionStep, CancellationSession]):
    model = SessionStep
    extra = 0
    can_delete = False
    fields = ["kind", "status", "attempts", "key_generation", "error", "stripe_calls", "data", "created_at"]
    readonly_fields = ["kind", "status", "attempts", "key_generation", "error", "stripe_calls", "data", "created_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CancellationSession)
class CancellationSessionAdmin(admin.ModelAdmin[CancellationSession]):
    list_display = [
        "token", "kind", "customer", "outcome", "stage", "is_test", "offered_offer", "accepted_offer", "created_at"
    ]  # fmt: skip
    list_filter = ["kind", "outcome", "stage", "is_test"]
    list_select_related = ["customer", "offered_offer", "accepted_offer"]
    search_fields = ["=token", "customer__email", "=customer__user_id"]
    inlines = [SessionStepInline]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(WinBackEmail)
class WinBackEmailAdmin(admin.ModelAdmin[WinBackEmail]):
    """Which lapsed trials were emailed their win-back link, and why the others were not (read-only)."""

    list_display = ["customer", "status", "reason", "to_email", "language", "created_at", "sent_at"]
    list_filter = ["status", "language"]
    list_select_related = ["customer"]
    search_fields = ["customer__email", "=customer__user_id"]
    readonly_fields = [field.name for field in WinBackEmail._meta.get_fields() if field.concrete]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
