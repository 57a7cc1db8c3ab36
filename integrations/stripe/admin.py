"""Back-office registrations (Admin role) for the billing catalogue and subscriptions of the Stripe mirror.

Imported by the integrations app's face (integrations/admin.py), which Django's admin autodiscovery reads.
"""

from __future__ import annotations

from django.contrib import admin

from integrations.stripe.models import AddOn, Plan, Product, Subscription, SubscriptionAddOn


class PlanInline(admin.TabularInline[Plan, Product]):
    """A product's plans, on the product's page."""

    model = Plan
    extra = 0


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin[Product]):
    """Products with their plans, found by name or Stripe id."""

    list_display = ["name", "stripe_product_id", "active"]
    search_fields = ["name", "=stripe_product_id"]
    inlines = [PlanInline]


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin[Plan]):
    """Plans with the price terms MRR is computed from."""

    list_display = ["name", "product", "amount_cents", "currency", "interval", "interval_count", "usage_type"]
    list_filter = ["interval", "usage_type", "active"]
    list_select_related = ["product"]


@admin.register(AddOn)
class AddOnAdmin(admin.ModelAdmin[AddOn]):
    """Add-ons with their price terms."""

    list_display = ["name", "product", "amount_cents", "currency", "interval", "usage_type"]


class SubscriptionAddOnInline(admin.TabularInline[SubscriptionAddOn, Subscription]):
    """A subscription's add-on lines, on the subscription's page."""

    model = SubscriptionAddOn
    extra = 0


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin[Subscription]):
    """Subscriptions, found by Stripe id or the customer's email or user id; MRR is computed, never typed."""

    list_display = ["id", "customer", "plan", "status", "quantity", "trial_end", "mrr_cents"]
    list_filter = ["status", "cancel_at_period_end"]
    search_fields = ["=stripe_subscription_id", "=customer__email", "=customer__user_id"]
    list_select_related = ["customer", "plan"]
    raw_id_fields = ["customer"]
    readonly_fields = ["mrr_cents", "stripe_state_at"]
    inlines = [SubscriptionAddOnInline]
    show_full_result_count = False
