from django.apps import AppConfig


class AudiencesConfig(AppConfig):
    """Who the customers are: profiles, accounts, identities, sources and the event timeline."""

    name = "audiences"
