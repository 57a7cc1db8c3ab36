"""How trial rows are reconciled when identity resolution folds one profile into another (audiences.merges).

Everything else of the merged profile (subscriptions, invoices, stage history, sends, alerts) simply moves; these
rules settle the two rows a customer may hold only one of.
"""

from __future__ import annotations

from trials.models import CustomerMessageLock, Trial


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


def message_locks_on_merge(merged_pk: int, kept_pk: int) -> dict[str, int]:
    """Both profiles have a send-throttle row: the kept one keeps the later last send, so the throttle still holds."""
    both = CustomerMessageLock.objects.filter(customer_id__in=(merged_pk, kept_pk))
    locks = {lock.customer_id: lock for lock in both}
    if len(locks) < 2:
        return {}
    merged_sent, kept_sent = locks[merged_pk].last_sent_at, locks[kept_pk].last_sent_at
    if merged_sent is not None and (kept_sent is None or merged_sent > kept_sent):
        CustomerMessageLock.objects.filter(customer_id=kept_pk).update(last_sent_at=merged_sent)
    CustomerMessageLock.objects.filter(customer_id=merged_pk).delete()
    return {"trials.CustomerMessageLock folded into the kept one (later send kept)": 1}
