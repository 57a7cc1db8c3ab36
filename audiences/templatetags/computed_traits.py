"""Template filters for computed trait values (the customer page, the trait pages)."""

from __future__ import annotations

from typing import Any

from django import template

from audiences.selectors import trait_value_text

register = template.Library()


@register.filter
def trait_value(value: Any, kind: str) -> str:
    """`{{ row.value|trait_value:row.trait.kind }}`: a value as staff read it (see trait_value_text)."""
    return trait_value_text(kind, value)


@register.filter
def percent_of(done: int | None, total: int | None) -> int:
    """Whole percent of `done` out of `total`, for progress bars (0 when nothing is known yet)."""
    if not total or done is None:
        return 0
    return min(100, round(done * 100 / total))
