"""What time alone changes, other than event windows (their edges are durable timers, segments.live.membership):
windowed computed traits whose oldest event left the window (and the live audiences reading them), and a full
evaluation of every live audience whose conditions read time otherwise."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from audiences.pipeline import BatchFacts, trait_changes_publish
from segments.evaluation import segment_evaluate
from segments.live.compiled import live_audiences
from segments.live.membership import audiences_refresh, customers_lock
from segments.traits.evaluation import computed_traits_decay


def time_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Decay windowed computed traits (publishing their changes and re-deciding the live audiences reading them),
    then fully evaluate every live audience whose conditions read time (dates within the last / next N days, days
    since or remaining, subscription durations)."""
    now = now or timezone.now()
    totals = {"trait_changes": 0, "audiences": 0, "entered": 0, "exited": 0}
    with transaction.atomic():
        changes = computed_traits_decay(now=now)
        trait_changes_publish(changes, now)
        totals["trait_changes"] = len(changes)
        if changes:
            customers_lock(change.customer_id for change in changes)
            facts = BatchFacts()
            facts.traits_changed(changes)
            for change in audiences_refresh(facts=facts, now=now):
                totals["entered" if change.kind == "entered" else "exited"] += 1
    for segment, _, needs, _ in live_audiences():
        if needs.time_based:
            result = segment_evaluate(segment=segment, now=now)
            totals["audiences"] += 1
            totals["entered"] += result.entered
            totals["exited"] += result.exited
    return totals
