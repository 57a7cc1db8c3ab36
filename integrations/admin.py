"""The integrations app's face for Django's admin autodiscovery: the packages register their own models."""

from integrations.stripe import admin as stripe_admin

__all__ = ["stripe_admin"]
