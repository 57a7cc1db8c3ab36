from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class IntegrationsConfig(AppConfig):
    """Everything that crosses the boundary: tracking API, Stripe, outbound webhooks, email, CSV; source admin."""

    name = "integrations"

    def ready(self) -> None:
        from audiences.selectors import source_cache_clear
        from integrations.models import SourceTrackingPlan, TrackingPlan, TrackingPlanEvent

        # A cached source carries its tracking plan: changing the plan or the link forgets the cached sources.
        for model in (SourceTrackingPlan, TrackingPlan, TrackingPlanEvent):
            for signal in (post_save, post_delete):
                uid = f"source-cache-{model.__name__}-{signal is post_save}"
                signal.connect(source_cache_clear, sender=model, dispatch_uid=uid)
