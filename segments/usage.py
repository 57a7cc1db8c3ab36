"""Who uses a segment: one registry that features using segments (offer rules, flows, plays, templates,
destinations) add a provider to, so test mode can warn before a segment in use is changed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from segments.models import Segment


@dataclass(frozen=True)
class SegmentUse:
    """One thing that depends on a segment, with a link to it."""

    kind: str
    name: str
    url: str


UsageProvider = Callable[[Segment], Iterable[SegmentUse]]
_providers: list[UsageProvider] = []


def register_usage(provider: UsageProvider) -> UsageProvider:
    """Add a provider (usable as a decorator); each feature registers one in its AppConfig.ready()."""
    if provider not in _providers:
        _providers.append(provider)
    return provider


def unregister_usage(provider: UsageProvider) -> None:
    if provider in _providers:
        _providers.remove(provider)


def segment_uses(segment: Segment) -> list[SegmentUse]:
    """Everything every registered feature reports as using the segment."""
    return [use for provider in _providers for use in provider(segment)]
