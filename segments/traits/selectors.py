"""Reads for the computed trait pages and API: definitions with how many customers hold a value, a trait's
values and changes, and the distribution of its values (on the typed value column segments compare)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.db.models import Avg, Count, F, IntegerField, Max, Min, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, TruncDate

from audiences.models import ComputedTrait, ComputedTraitChange, ComputedTraitValue
from segments.traits.kinds import value_column

# A value row "has a value" when one of its typed columns is set (the JSON `value` may hold a JSON null).
HAS_VALUE = (
    Q(number_value__isnull=False)
    | Q(text_value__isnull=False)
    | Q(bool_value__isnull=False)
    | Q(date_value__isnull=False)
)
TOP_VALUES = 10


def computed_trait_list() -> QuerySet[ComputedTrait]:
    """Definitions by key, each with how many customers hold a value — a correlated count per listed row, served
    by the (trait, customer) unique index, so a page of traits costs one query whatever the rows."""
    counted = (
        ComputedTraitValue.objects.filter(HAS_VALUE, trait=OuterRef("pk"))
        .order_by()
        .values("trait")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return ComputedTrait.objects.annotate(
        customers_with_value=Coalesce(Subquery(counted, output_field=IntegerField()), 0)
    ).order_by("key")


def computed_trait_values(trait: ComputedTrait) -> QuerySet[ComputedTraitValue]:
    """The customers holding a value of a trait, with the customer joined (page by `-customer_id`)."""
    return ComputedTraitValue.objects.filter(HAS_VALUE, trait=trait).select_related("customer")


def computed_trait_changes(trait: ComputedTrait) -> QuerySet[ComputedTraitChange]:
    """A trait's value changes, newest first (served by the (trait, -at) index), with the customer joined."""
    return ComputedTraitChange.objects.filter(trait=trait).select_related("customer").order_by("-at", "-id")


@dataclass(frozen=True)
class ValueCount:
    """One of a trait's most common values (for date kinds: a day) and how many customers hold it."""

    value: Any
    customers: int


@dataclass(frozen=True)
class TraitDistribution:
    """What a trait's values look like across customers: how many hold one, the range, the mean (numbers),
    and the most common values (for time-based kinds, the most common days)."""

    customers: int
    low: Any
    high: Any
    mean: float | None
    top: list[ValueCount]
    by_day: bool


def _typed(kind: str, value: Any) -> Any:
    if value is not None and kind == ComputedTrait.Kind.UNIQUE_LIST and isinstance(value, str):
        return json.loads(value)
    return value


def computed_trait_distribution(trait: ComputedTrait, *, top: int = TOP_VALUES) -> TraitDistribution:
    """Stats and top values in two set-based queries on the trait's typed value column (one aggregate, one
    GROUP BY ... ORDER BY count LIMIT), never by loading the values into Python."""
    column = value_column(trait.kind)
    rows = ComputedTraitValue.objects.filter(trait=trait, **{f"{column}__isnull": False}).order_by()
    numeric = column == "number_value"
    aggregates: dict[str, Any] = {"customers": Count("pk"), "low": Min(column), "high": Max(column)}
    if numeric:
        aggregates["mean"] = Avg(column)
    stats = rows.aggregate(**aggregates)
    by_day = column == "date_value"
    bucket = TruncDate(column, tzinfo=UTC) if by_day else F(column)
    common = rows.values(bucket=bucket).annotate(n=Count("pk")).order_by("-n", "bucket")[:top]
    mean = stats.get("mean")
    return TraitDistribution(
        customers=stats["customers"],
        low=_typed(trait.kind, stats["low"]),
        high=_typed(trait.kind, stats["high"]),
        mean=round(float(mean), 2) if mean is not None else None,
        top=[ValueCount(_typed(trait.kind, row["bucket"]), row["n"]) for row in common],
        by_day=by_day,
    )
