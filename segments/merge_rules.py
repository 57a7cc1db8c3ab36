"""How segment memberships are reconciled when identity resolution folds one profile into another
(audiences.merges). Membership history moves as it is."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Subquery

from segments.models import SegmentMembership


def memberships_on_merge(merged_pk: int, kept_pk: int) -> dict[str, int]:
    """Both profiles in one segment: the kept profile's membership stays, entered at the earlier of the two
    times, and the merged profile's duplicate goes; its memberships in segments the kept profile is not in move."""
    earlier = SegmentMembership.objects.filter(
        customer_id=merged_pk, segment_id=OuterRef("segment_id"), entered_at__lt=OuterRef("entered_at")
    ).values("entered_at")[:1]
    SegmentMembership.objects.filter(customer_id=kept_pk).filter(Exists(earlier)).update(entered_at=Subquery(earlier))
    in_both = SegmentMembership.objects.filter(customer_id=kept_pk).values("segment_id")
    dropped, _ = SegmentMembership.objects.filter(customer_id=merged_pk, segment_id__in=in_both).delete()
    return {"segments.SegmentMembership in both (earlier entry kept)": dropped} if dropped else {}
