from django.apps import AppConfig


class OffersConfig(AppConfig):
    """Retention offers, offer rules, cancellation flows and sessions, applied through the Stripe API."""

    name = "offers"

    def ready(self) -> None:
        # Segments know nothing of offers: the rules that read a segment are reported through its registry.
        from offers.conditions import register_offer_conditions
        from offers.configuration import segment_uses_in_offers
        from segments.usage import register_usage

        register_usage(segment_uses_in_offers)
        register_offer_conditions()  # subscriber.active_offer_id, subscriber.days_since_saved
