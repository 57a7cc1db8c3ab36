from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    """The conditions layer: the condition language, its catalogue and compiler, segments, live audience membership
    and computed-trait evaluation."""

    name = "segments"

    def ready(self) -> None:
        from audiences.merges import on_profile_merge
        from segments.merge_rules import memberships_on_merge
        from segments.models import SegmentMembership

        on_profile_merge(SegmentMembership, memberships_on_merge)

        # After each stored batch (audiences.pipeline): computed traits first, live audience membership last.
        from audiences.pipeline import on_batch_settled, on_batch_traits
        from config.housekeeping import register_housekeeping
        from config.timers import register_timer_handler
        from segments.live.membership import TIME_WINDOW_TIMER, membership_on_batch, time_windows_fire
        from segments.traits.evaluation import applied_batches_purge, traits_on_batch

        on_batch_traits(traits_on_batch)
        register_housekeeping("old_applied_batches", applied_batches_purge)
        on_batch_settled(membership_on_batch)
        # Live audiences' "in the last N days" edges fire from durable timers (segments.live.membership).
        register_timer_handler(TIME_WINDOW_TIMER, time_windows_fire)

        # A new rate or workspace currency re-values customers' MRR (the Stripe mirror, intake): their live
        # audiences are decided again.
        from audiences.pipeline import BatchFacts
        from integrations.stripe.billing_settings import on_billing_changed
        from segments.live.membership import audiences_refresh

        on_billing_changed(lambda ids: audiences_refresh(facts=BatchFacts(billing_changed=ids), now=None))

        # The customer page shows the customer's segments (audiences.panels).
        from audiences.panels import register_customer_panel
        from segments.profile_panel import MEMBERSHIP_PANEL

        register_customer_panel(MEMBERSHIP_PANEL)

        # Celery's autodiscovery reads <app>.tasks only: the packages' task modules register by being imported.
        import segments.live.tasks
        import segments.traits.tasks  # noqa: F401
