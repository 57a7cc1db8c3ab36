from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    """The condition language and its engine: segments compiled to one SQL query (models arrive with it)."""

    name = "segments"

    def ready(self) -> None:
        from audiences.merges import on_profile_merge
        from segments.merge_rules import memberships_on_merge
        from segments.models import SegmentMembership

        on_profile_merge(SegmentMembership, memberships_on_merge)
