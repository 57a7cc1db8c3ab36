"""Routes of the integrations app, included by config.urls at the root (paths and names as they always were):
the Stripe pages and webhook, the intake layer's (integrations.tracking.urls) and the outbound layer's
(integrations.destinations.urls). API_ROUTES are the viewsets for config.urls' shared `/api/v1/` router."""

from django.urls import URLPattern, URLResolver, include, path

from integrations.destinations.urls import API_ROUTES
from integrations.stripe import views as stripe_views

__all__ = ["API_ROUTES", "urlpatterns"]

urlpatterns: list[URLPattern | URLResolver] = [
    path("integrations/stripe/", stripe_views.StripeOverviewView.as_view(), name="stripe-overview"),
    path("integrations/stripe/billing/", stripe_views.BillingSettingsView.as_view(), name="billing-settings"),
    path(
        "integrations/stripe/events/<int:pk>/replay/",
        stripe_views.StripeEventReplayView.as_view(),
        name="stripe-event-replay",
    ),
    path(
        "integrations/stripe/customers/<int:pk>/link/",
        stripe_views.StripeCustomerLinkView.as_view(),
        name="stripe-customer-link",
    ),
    path("webhooks/stripe/", stripe_views.stripe_webhook, name="stripe-webhook"),
    path("", include("integrations.tracking.urls")),
    path("", include("integrations.destinations.urls")),
]
