"""Moving every row of a merged profile to the profile it is folded into, without losing any.

Identity resolution (audiences.ingestion) folds an anonymous profile into the identified one. Each table that
points at Customer — this app's, and those of the apps built on it (trials, segments, offers, integrations), m2m
tables included — moves in one UPDATE. Some rows cannot simply move: the kept profile already has their
counterpart under a unique constraint (one current trial per customer, one membership per segment, one value
per computed trait). For those, the app that owns the model registers a rule (`on_profile_merge`, from its
AppConfig.ready(), so this module imports no higher layer) that reconciles them before the move — marks the
older current trial non-current, keeps the earlier segment entry — and says what it did; the merge record keeps
that. Rows the rule leaves alone move. A model with such a constraint and no rule stops the merge with
MergeRuleMissing instead of losing rows silently, and a test checks that every installed model has its rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, Model, OuterRef, Q, UniqueConstraint
from django.db.models.fields.reverse_related import ForeignObjectRel

from audiences.models import ComputedTraitValue, Customer

# (merged customer id, kept customer id) -> what the rule did, as {description: rows}; run before the move.
MergeRule = Callable[[int, int], dict[str, int]]
_rules: dict[type[Model], MergeRule] = {}


class MergeRuleMissing(Exception):
    """Rows of a merged profile collide with the kept profile's under a unique constraint and no rule reconciles
    them: a programming error (a new model needs its rule), never an input error."""


def on_profile_merge(model: type[Model], rule: MergeRule) -> None:
    """Register how rows of `model` that would collide when a merged profile's rows move are reconciled."""
    _rules[model] = rule


@dataclass(frozen=True)
class CustomerLink:
    """A foreign key to Customer and the unique constraints it is part of: (the other fields, the condition)."""

    model: type[Model]
    field_name: str
    unique_sets: tuple[tuple[tuple[str, ...], Q | None], ...]

    @property
    def label(self) -> str:
        return str(self.model._meta.label)

    def collisions(self, merged_pk: int, kept_pk: int) -> Q:
        """Rows of the merged profile that the kept profile already has under one of the unique constraints."""
        manager: Any = self.model._default_manager
        colliding = Q(pk__in=[])
        for others, condition in self.unique_sets:
            counterpart = manager.filter(**{self.field_name: kept_pk}, **{name: OuterRef(name) for name in others})
            if condition is not None:
                counterpart = counterpart.filter(condition)
            colliding |= (condition or Q()) & Q(Exists(counterpart))
        return colliding


def _unique_sets(model: type[Model], field_name: str) -> tuple[tuple[tuple[str, ...], Q | None], ...]:
    field = model._meta.get_field(field_name)
    sets: list[tuple[tuple[str, ...], Q | None]] = []
    if getattr(field, "unique", False):  # a one-to-one, or a unique foreign key
        sets.append(((), None))
    for together in model._meta.unique_together:
        if field_name in together:
            sets.append((tuple(name for name in together if name != field_name), None))
    for constraint in model._meta.constraints:
        if isinstance(constraint, UniqueConstraint) and field_name in constraint.fields:
            others = tuple(name for name in constraint.fields if name != field_name)
            sets.append((others, constraint.condition))
    return tuple(sets)


def customer_links() -> list[CustomerLink]:
    """Every table that points at Customer (hidden and m2m ones too), with the constraints a merge may hit."""
    links = []
    for relation in Customer._meta.get_fields(include_hidden=True):
        if isinstance(relation, ForeignObjectRel) and (relation.one_to_many or relation.one_to_one):
            model: type[Model] = relation.related_model  # type: ignore[assignment]
            field_name = relation.field.name
            links.append(CustomerLink(model, field_name, _unique_sets(model, field_name)))
    return links


def _drop_link_duplicates(link: CustomerLink, merged_pk: int, kept_pk: int) -> dict[str, int]:
    """An m2m row says only that the two are linked: one the kept profile has too carries nothing to keep."""
    manager: Any = link.model._default_manager
    dropped, _ = manager.filter(**{link.field_name: merged_pk}).filter(link.collisions(merged_pk, kept_pk)).delete()
    return {f"{link.label} duplicates dropped": dropped} if dropped else {}


def profile_rows_move(*, merged_pk: int, kept_pk: int) -> tuple[dict[str, int], dict[str, int]]:
    """Move every row of the merged profile to the kept one; returns (rows moved, what rules reconciled) per
    model label. Runs inside the merge's transaction, with the merged profile locked."""
    moved: dict[str, int] = {}
    reconciled: dict[str, int] = {}
    for link in customer_links():
        manager: Any = link.model._default_manager
        rows = manager.filter(**{link.field_name: merged_pk})
        if link.unique_sets:
            rule = _rules.get(link.model)
            if rule is not None:
                reconciled.update(rule(merged_pk, kept_pk))
            elif link.model._meta.auto_created:
                reconciled.update(_drop_link_duplicates(link, merged_pk, kept_pk))
            colliding = rows.filter(link.collisions(merged_pk, kept_pk)).count()
            if colliding:
                raise MergeRuleMissing(
                    f"{colliding} {link.label} rows of customer {merged_pk} collide with customer {kept_pk}'s;"
                    " register a rule with audiences.merges.on_profile_merge"
                )
        count = rows.update(**{link.field_name: kept_pk})
        if count:
            moved[link.label] = count
    return moved, reconciled


def _computed_values_on_merge(merged_pk: int, kept_pk: int) -> dict[str, int]:
    """A computed trait both profiles have a value of: the merged profile's goes, and the profile task recomputes
    the kept profile's from all its events, the moved ones included (computed_traits_apply)."""
    kept_traits = ComputedTraitValue.objects.filter(customer_id=kept_pk).values("trait_id")
    dropped, _ = ComputedTraitValue.objects.filter(customer_id=merged_pk, trait_id__in=kept_traits).delete()
    return {"audiences.ComputedTraitValue duplicates dropped, recomputed": dropped} if dropped else {}


on_profile_merge(ComputedTraitValue, _computed_values_on_merge)
