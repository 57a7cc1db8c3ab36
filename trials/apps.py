from django.apps import AppConfig


class TrialsConfig(AppConfig):
    """The trial-to-paid loop: the catalogue, subscriptions, trials with their stage and scores (kept current
    by a stored-batch hook and a beat sweep), and later templates and plays."""

    name = "trials"

    def ready(self) -> None:
        from audiences.pipeline import on_batch_stored
        from trials.loop import trials_on_batch

        on_batch_stored(trials_on_batch)
