"""Back-office registrations (Admin role): raw views of profiles, accounts, sources and events."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from audiences.models import Account, AnonymousId, Customer, CustomerErasure, Event, Source


class AnonymousIdInline(admin.TabularInline[AnonymousId, Customer]):
    model = AnonymousId
    extra = 0
    readonly_fields = ["created_at"]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin[Customer]):
    list_display = ["id", "name", "email", "user_id", "account", "subscriber_status", "mrr_cents", "last_seen_at"]
    list_filter = ["subscriber_status", "is_test"]
    search_fields = ["=user_id", "=email", "=stripe_customer_id", "name"]
    list_select_related = ["account"]
    raw_id_fields = ["account"]
    inlines = [AnonymousIdInline]
    show_full_result_count = False  # no second COUNT(*) on a million rows


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin[Account]):
    list_display = ["name", "group_id", "domain", "owner"]
    search_fields = ["=group_id", "name", "domain"]
    list_select_related = ["owner"]


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin[Source]):
    """Keys are created and rotated on the Integrations page, which shows them once; here they are read-only, and
    the secret key itself is never shown (its fields are not editable, so no form renders them)."""

    list_display = ["name", "kind", "write_key_prefix", "secret_key_prefix", "is_active", "created_at"]
    readonly_fields = ["write_key_hash", "write_key_prefix", "key_rotated_at", "secret_key_prefix", "secret_rotated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin[Event]):
    """Events are append-only: viewable here, never edited."""

    list_display = ["id", "timestamp", "type", "name", "customer", "source"]
    list_filter = ["type"]
    search_fields = ["=name", "=message_id", "=user_id"]
    raw_id_fields = ["customer"]
    list_select_related = ["customer", "source"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False


@admin.register(CustomerErasure)
class CustomerErasureAdmin(admin.ModelAdmin[CustomerErasure]):
    """The erasure log: read-only, so nobody can rewrite the record that a customer was erased."""

    list_display = ["customer_pk", "erased_at", "erased_by", "via", "suppress_future_events"]
    list_filter = ["via", "suppress_future_events"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: CustomerErasure | None = None) -> bool:
        return False
