from django.apps import AppConfig


class TrialsConfig(AppConfig):
    """The trial-to-paid loop: the catalogue, subscriptions and (later) trials, scores, templates and plays."""

    name = "trials"
