"""Writes on computed trait definitions that computed_traits.py (the engine) does not cover: deleting one."""

from __future__ import annotations

from django.db import transaction

from audiences.models import ComputedTrait
from segments.selectors import segments_reading_property


class TraitInUse(ValueError):
    """A definition that segments still compare on cannot be deleted; `segments` names them."""

    def __init__(self, trait: ComputedTrait, segments: list[str]) -> None:
        super().__init__(
            f"computed.{trait.key} is used by the segment{'s' if len(segments) > 1 else ''} "
            f"{', '.join(segments)}: remove it from their conditions first"
        )
        self.segments = segments


@transaction.atomic
def computed_trait_delete(*, trait: ComputedTrait) -> None:
    """Delete a definition with its values and change history (they cascade).

    Refused while a segment's conditions or draft read `computed.<key>`: such a segment could no longer be
    parsed, so it would quietly stop being evaluated. A segment saved in the instant between the check and the
    delete ends up in that state, which the periodic evaluation tolerates (it skips the segment and records it
    among the run's invalid segments), so the check takes no lock.
    """
    users = segments_reading_property(f"computed.{trait.key}")
    if users:
        raise TraitInUse(trait, [segment.name for segment in users])
    trait.delete()
