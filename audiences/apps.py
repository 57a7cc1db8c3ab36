from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class AudiencesConfig(AppConfig):
    """Who the customers are: profiles, accounts, identities, sources and the event timeline."""

    name = "audiences"

    def ready(self) -> None:
        from audiences.live import TIME_WINDOW_TIMER, time_windows_fire
        from audiences.models import Source
        from audiences.selectors import source_cache_clear
        from config.timers import register_timer_handler

        # Live audiences' "in the last N days" edges fire from durable timers (audiences.live).
        register_timer_handler(TIME_WINDOW_TIMER, time_windows_fire)

        # The dashboard's profile figures, and housekeeping of the applied-batch ledger, run by the kernel.
        from audiences.computed_traits import applied_batches_purge
        from audiences.selectors import profile_figures
        from config.figures import register_figures
        from config.housekeeping import register_housekeeping

        register_figures(profile_figures)
        register_housekeeping("old_applied_batches", applied_batches_purge)

        # The tracking API keeps the sources it authenticated for a moment; a change to one must not wait.
        for signal in (post_save, post_delete):
            signal.connect(source_cache_clear, sender=Source, dispatch_uid=f"source-cache-{signal is post_save}")
