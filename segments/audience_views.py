"""Staff UI for live audiences: the live switch on a segment, and the audience page — size over time as a
server-drawn SVG chart (no chart library, nothing from a CDN) and the recent entries and exits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.views.generic import TemplateView

from config.pagination import paginate_for_ui
from config.permissions import StaffPermissionMixin
from config.roles import LIVE_AUDIENCE_PERMISSION
from segments import selectors
from segments.audience_services import InvalidAudience, segment_live_set
from segments.live.publish import audience_key
from segments.models import Segment, SegmentMembershipChange

# The ranges the audience page offers: label -> (bucket, how far back).
RANGES: dict[str, tuple[str, timedelta]] = {
    "24h": ("hour", timedelta(hours=23)),
    "7d": ("hour", timedelta(days=7)),
    "30d": ("day", timedelta(days=29)),
    "90d": ("day", timedelta(days=89)),
    "365d": ("day", timedelta(days=364)),
}
DEFAULT_RANGE = "30d"


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class SizeChart:
    """Coordinates for the template's inline SVG: the line of member counts, the area under it, axis ticks, and
    one dot per bucket carrying its figures as a tooltip."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    line: str
    area: str
    dots: list[Dot]
    y_ticks: list[Tick]
    x_ticks: list[Tick]


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 2.5 or 5 × 10ⁿ at or above `value`, so axis labels are round numbers."""
    if value <= 1:
        return 1
    magnitude: int = 10 ** (len(str(value)) - 1)
    for step in (1.0, 2.0, 2.5, 5.0):
        if value <= step * magnitude:
            return int(step * magnitude)
    return 10 * magnitude


def size_chart(points: list[selectors.SizePoint], bucket: str, *, width: int = 760, height: int = 240) -> SizeChart:
    """Lay the history out on a fixed canvas (scaled by the SVG viewBox), y from 0 to a round maximum."""
    left, right, top, bottom = 56, width - 16, 12, height - 28
    ceiling = _nice_ceiling(max((p.size for p in points), default=0))
    span = max(len(points) - 1, 1)

    def x(index: int) -> float:
        return round(left + (right - left) * (index / span if len(points) > 1 else 0.5), 1)

    def y(size: int) -> float:
        return round(bottom - (bottom - top) * max(size, 0) / ceiling, 1)

    when = "%b %d %H:00" if bucket == "hour" else "%b %d"
    dots = [
        Dot(x(i), y(p.size), f"{p.at:{when}} — {p.size:,} members (+{p.entered:,} / −{p.exited:,})")
        for i, p in enumerate(points)
    ]
    line = " ".join(f"{d.x},{d.y}" for d in dots)
    area = f"{dots[0].x},{bottom} {line} {dots[-1].x},{bottom}" if dots else ""
    middle = {ceiling // 2} if ceiling % 2 == 0 else set()
    y_ticks = [Tick(y(value), f"{value:,}") for value in sorted({0, ceiling, *middle})]
    every = max(1, len(points) // 6)
    x_ticks = [Tick(x(i), f"{p.at:{when}}") for i, p in enumerate(points) if i % every == 0]
    return SizeChart(width, height, left, right, top, bottom, line, area, dots, y_ticks, x_ticks)


class SegmentAudienceView(StaffPermissionMixin, TemplateView):
    """Size over time and the recent entries/exits of a segment (live or not: every segment keeps history)."""

    template_name = "segments/segment_audience.html"
    required_permissions = ("segments.view_segment", "audiences.view_customer")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        segment = get_object_or_404(Segment, pk=self.kwargs["pk"])
        chosen = self.request.GET.get("range", DEFAULT_RANGE)
        chosen = chosen if chosen in RANGES else DEFAULT_RANGE
        bucket, back = RANGES[chosen]
        now = timezone.now()
        points = selectors.segment_size_history(segment, since=now - back, until=now, bucket=bucket)
        kind = self.request.GET.get("kind", "")
        kind = kind if kind in SegmentMembershipChange.Kind.values else ""
        return {
            **super().get_context_data(**kwargs),
            "segment": segment,
            "audience_key": audience_key(segment),
            "ranges": list(RANGES),
            "chosen_range": chosen,
            "bucket": bucket,
            "points": points,
            "chart": size_chart(points, bucket),
            "entered": sum(p.entered for p in points),
            "exited": sum(p.exited for p in points),
            "kind": kind,
            "kinds": SegmentMembershipChange.Kind.choices,
            "changes": paginate_for_ui(self.request, selectors.segment_changes(segment, kind=kind), ordering="-at"),
        }


class SegmentLiveView(StaffPermissionMixin, TemplateView):
    """The live switch (POST): on/off and the audience key, through segment_live_set."""

    required_permissions = (LIVE_AUDIENCE_PERMISSION,)
    http_method_names = ["post"]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        segment = get_object_or_404(Segment, pk=kwargs["pk"])
        is_live = request.POST.get("is_live") == "on"
        try:
            saved = segment_live_set(
                segment=segment, is_live=is_live, audience_key=request.POST.get("audience_key", "")
            )
        except InvalidAudience as invalid:
            messages.error(request, f"Live audience not changed: {invalid.message}.")
        else:
            state = f"live as “{audience_key(saved)}”" if saved.is_live else "no longer live"
            messages.success(request, f"{saved.name} is {state}.")
        return HttpResponseRedirect(reverse("segment-detail", kwargs={"pk": segment.pk}))
