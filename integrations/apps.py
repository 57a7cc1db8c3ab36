from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    """Everything that crosses the boundary: tracking API, Stripe, outbound webhooks, email, CSV; source admin."""

    name = "integrations"
