"""Writes on computed trait definitions — saving one (backfilled from history by a task queued on commit) and
deleting one — the one path for the pages, the API, the demo data and the commands."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from audiences.models import ComputedTrait
from segments.selectors import segments_reading_property
from segments.traits.definitions import InvalidTrait, definition_validated
from segments.traits.tasks import backfill_computed_trait


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


def computed_trait_save(
    *,
    key: str,
    name: str,
    kind: str,
    event: str = "",
    property: str = "",
    where: Any = None,
    window_days: int | None = None,
    since_trial_start: bool = False,
    description: str = "",
    trait: ComputedTrait | None = None,
) -> ComputedTrait:
    """Create or change a definition (InvalidTrait names the bad field); a new or changed definition is
    backfilled from history by a task queued on commit. An empty `event` means any event the customer performed
    (for the kinds that read no property)."""
    fields = definition_validated(
        key=key,
        name=name,
        kind=kind,
        event=event,
        property=property,
        where=where or [],
        window_days=window_days,
        since_trial_start=since_trial_start,
    )
    definition = ("kind", "event", "property", "where", "window_days", "since_trial_start")
    with transaction.atomic():
        trait = trait or ComputedTrait()
        redefined = trait.pk is None or any(getattr(trait, f) != fields[f] for f in definition)
        for name_, value in fields.items():
            setattr(trait, name_, value)
        trait.description = description
        if redefined:
            trait.backfill_status = ComputedTrait.Backfill.PENDING
            trait.backfill_done = trait.backfill_total = 0
            trait.backfill_started_at = trait.backfill_finished_at = None
            trait.backfill_error = ""
        try:
            with transaction.atomic():
                trait.save()
        except IntegrityError as error:
            raise InvalidTrait("key", f"a computed trait with key {fields['key']!r} already exists") from error
        if redefined:
            trait_id = trait.pk
            transaction.on_commit(lambda: _queue_backfill(trait_id))
    return trait


def _queue_backfill(trait_id: int) -> None:
    backfill_computed_trait.delay(trait_id)
