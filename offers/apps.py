from django.apps import AppConfig


class OffersConfig(AppConfig):
    """Retention offers, offer rules and cancellation flows (models arrive with the offers feature)."""

    name = "offers"
