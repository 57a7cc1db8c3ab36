"""Writes on live audiences: switching a segment's live mode on or off, with the key downstream tools see.

A live audience's membership follows events within about a second and every entry and exit is published
(timeline events, destinations, suppression hooks — see audiences.live). The key is what a destination names the
audience by, so two live audiences may never share one.
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.db import transaction

from config.locks import task_lock
from segments.live.publish import audience_key as live_audience_key
from segments.models import Segment
from segments.tasks import evaluate_segment

AUDIENCE_KEY = re.compile(r"^[a-z0-9][a-z0-9_]{0,99}$")


class InvalidAudience(ValueError):
    """A live-audience setting that cannot be accepted; `field` names the bad field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def segment_live_set(*, segment: Segment, is_live: bool, audience_key: str = "") -> Segment:
    """Make a segment a live audience (or a plain segment again) under the given key ("" derives it from the name).

    The key must be snake_case (lower-case letters, digits, _) and — counting keys derived from names — unique
    among live audiences, because destinations address audiences by it. Concurrent switches are serialised by one
    database lease taken inside the transaction, so two segments cannot both claim a key in a race. Switching on
    queues a task on commit that publishes the members it already has as entered (so destinations learn of them)
    and evaluates it, so membership is current before the live path starts applying differences to it.
    """
    key = audience_key.strip()
    if key and not AUDIENCE_KEY.match(key):
        raise InvalidAudience(
            "audience_key", "use lower-case letters, digits and _ only, starting with a letter or digit (at most 100)"
        )
    with transaction.atomic(), task_lock("live audience keys", ttl=timedelta(minutes=1)) as acquired:
        if not acquired:
            raise InvalidAudience("is_live", "another change to live audiences is being saved; try again")
        locked = Segment.objects.select_for_update().get(pk=segment.pk)
        switched_on = is_live and not locked.is_live
        locked.is_live, locked.audience_key = is_live, key
        if is_live:
            effective = live_audience_key(locked)
            others = Segment.objects.filter(is_live=True).exclude(pk=locked.pk).order_by("name")
            holder = next((other for other in others if live_audience_key(other) == effective), None)
            if holder is not None:
                raise InvalidAudience(
                    "audience_key", f"“{effective}” is already the key of the live audience “{holder.name}”"
                )
        locked.save(update_fields=["is_live", "audience_key", "updated_at"])
        if switched_on:
            segment_id = locked.pk
            transaction.on_commit(lambda: _queue_evaluation(segment_id))
    return locked


def _queue_evaluation(segment_id: int) -> None:
    evaluate_segment.delay(segment_id, announce_members=True)
