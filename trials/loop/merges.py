"""How trial rows are reconciled when identity resolution folds one profile into another (audiences.merges).

Everything else of the merged profile (subscriptions, invoices, stage history, sends, alerts) simply moves; this
rule settles the one row a customer may hold only one of: the current trial.
"""

from __future__ import annotations

from trials.loop.models import Trial


def current_trials_on_merge(merged_pk: int, kept_pk: int) -> dict[str, int]:
    """Both profiles on a current trial: the one that started earlier becomes non-current (and is no longer swept),
    the later one stays the customer's current trial; both keep their stage history."""
    current = list(
        Trial.objects.filter(customer_id__in=(merged_pk, kept_pk), is_current=True)
        .order_by("started_at", "pk")
        .values_list("pk", flat=True)
    )
    if len(current) < 2:
        return {}
    count = Trial.objects.filter(pk__in=current[:-1]).update(is_current=False, next_check_at=None)
    return {"trials.Trial older current trial made non-current": count}
