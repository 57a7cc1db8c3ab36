"""How the send-throttle lock is reconciled when identity resolution folds one profile into another
(audiences.merges): a customer holds one CustomerMessageLock, and the throttle must still hold after the merge.
"""

from __future__ import annotations

from trials.messaging.models import CustomerMessageLock


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
