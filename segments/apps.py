from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    """The condition language and its engine: segments compiled to one SQL query (models arrive with it)."""

    name = "segments"
