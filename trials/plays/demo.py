"""A few alerts in the demo data set, so the queue, the briefs and the team load have something to show."""

from __future__ import annotations

from datetime import datetime, timedelta

from audiences.models import Customer
from trials.loop.lifecycle import trials_process
from trials.plays.plays import plays_evaluate

DEMO_SAMPLE = 300


def demo_alerts(*, user_id_prefix: str, now: datetime, sample: int = DEMO_SAMPLE) -> int:
    """Derive the trials of the most recent demo signups and run the plays for them: the default plays raise
    alerts from the demo's own event histories (unassigned until reps exist). Returns the alerts created;
    seed_demo derives every other trial afterwards."""
    recent = (
        Customer.objects.filter(user_id__startswith=user_id_prefix, first_seen_at__gte=now - timedelta(days=20))
        .order_by("-first_seen_at")
        .values_list("pk", flat=True)[:sample]
    )
    customer_ids = set(recent)
    if not customer_ids:
        return 0
    trials_process(customer_ids=customer_ids, now=now)
    return plays_evaluate(now=now, customer_ids=customer_ids)["alerts"]
