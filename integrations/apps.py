from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class IntegrationsConfig(AppConfig):
    """Everything that crosses the boundary: tracking API, Stripe, outbound webhooks, email, CSV; source admin."""

    name = "integrations"

    def ready(self) -> None:
        from audiences.privacy.rules import register_erasure_rule, register_file_sweeper
        from audiences.selectors import source_cache_clear
        from config.facts import facts_recorded
        from integrations.destinations.emit import facts_deliver
        from integrations.destinations.privacy import ERASURE_RULES as DESTINATION_ERASURE_RULES
        from integrations.privacy import ERASURE_RULES as STRIPE_ERASURE_RULES
        from integrations.tracking.models import SourceTrackingPlan, TrackingPlan, TrackingPlanEvent
        from integrations.tracking.privacy import ERASURE_RULES as TRACKING_ERASURE_RULES
        from integrations.tracking.privacy import import_files_sweep

        # Facts recorded anywhere below (audience changes, billing events, alerts, accepted offers) become
        # deliveries for the destinations subscribed to them, in the recorder's transaction.
        facts_recorded.connect(facts_deliver, dispatch_uid="integrations-facts-deliver")

        # A cached source carries its tracking plan: changing the plan or the link forgets the cached sources.
        for model in (SourceTrackingPlan, TrackingPlan, TrackingPlanEvent):
            for signal in (post_save, post_delete):
                uid = f"source-cache-{model.__name__}-{signal is post_save}"
                signal.connect(source_cache_clear, sender=model, dispatch_uid=uid)

        # GDPR erasure reaches the Stripe logs, the tracking API's error log, orphaned deliveries and uploads.
        for rule in (*STRIPE_ERASURE_RULES, *TRACKING_ERASURE_RULES, *DESTINATION_ERASURE_RULES):
            register_erasure_rule(rule)
        register_file_sweeper(import_files_sweep)

        # The dashboard's subscription figures come from the Stripe mirror.
        from config.figures import register_figures
        from integrations.stripe.figures import subscription_figures

        register_figures(subscription_figures)

        # The customer page's subscriptions panel (profiles show it without importing the mirror).
        from audiences.panels import register_customer_panel
        from integrations.stripe.panels import SUBSCRIPTIONS_PANEL

        register_customer_panel(SUBSCRIPTIONS_PANEL)
