from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class AudiencesConfig(AppConfig):
    """Who the customers are: profiles, accounts, identities, sources and the event timeline."""

    name = "audiences"

    def ready(self) -> None:
        from audiences.models import Source

        # The dashboard's profile figures, shown by the kernel.
        from audiences.selectors import profile_figures, source_cache_clear
        from config.figures import register_figures

        register_figures(profile_figures)

        # The tracking API keeps the sources it authenticated for a moment; a change to one must not wait.
        for signal in (post_save, post_delete):
            signal.connect(source_cache_clear, sender=Source, dispatch_uid=f"source-cache-{signal is post_save}")
