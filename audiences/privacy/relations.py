"""Which rows are a customer's: every model with a foreign-key path to Customer, found by walking the model graph
at run time, so a model added later is exported and erased without anyone remembering to add it to a list (and
the completeness test walks the same graph).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import models

from audiences.models import Account, Customer

# Models a path may not pass through: they are shared by many customers, so reaching a row through them does
# not make the row this customer's (an account's other members, a segment's other members, ...).
_SHARED_MODELS = {"audiences.Account", "audiences.Source", "segments.Segment", "audiences.ComputedTrait"}
_MAX_DEPTH = 3


@dataclass(frozen=True)
class CustomerRelation:
    """One model whose rows belong to a customer, and the ORM lookup from that model to the customer's id."""

    model: type[models.Model]
    path: str

    @property
    def label(self) -> str:
        return self.model._meta.label

    @property
    def depth(self) -> int:
        return self.path.count("__") + 1

    @property
    def nullable(self) -> bool:
        """Whether a row can lose its way to a customer (a delivery kept after its profile was merged away)."""
        model: Any = self.model
        for name in self.path.split("__"):
            relation = model._meta.get_field(name)
            if relation.null:
                return True
            model = relation.related_model
        return False


def _forward_relations(model: type[models.Model]) -> Iterable[models.ForeignKey[Any, Any]]:
    for field_ in model._meta.concrete_fields:
        if isinstance(field_, models.ForeignKey) and field_.remote_field is not None:
            yield field_


def _path_to_customer(model: type[models.Model], depth: int = _MAX_DEPTH) -> str | None:
    """The shortest lookup path (`customer`, `subscription__customer`, ...) from model to Customer, if any."""
    frontier: list[tuple[type[models.Model], str]] = [(model, "")]
    for _ in range(depth):
        next_frontier: list[tuple[type[models.Model], str]] = []
        for current, prefix in frontier:
            for relation in _forward_relations(current):
                target = relation.related_model
                if not isinstance(target, type):
                    continue
                path = f"{prefix}{relation.name}"
                if target is Customer:
                    return path
                if target._meta.label in _SHARED_MODELS or target is model:
                    continue
                next_frontier.append((target, f"{path}__"))
        frontier = next_frontier
    return None


def customer_relations() -> list[CustomerRelation]:
    """Every concrete model holding rows of one customer, shallowest path first."""
    relations: list[CustomerRelation] = []
    for model in apps.get_models():
        if model is Customer or model._meta.proxy or model is Account:
            continue
        path = _path_to_customer(model)
        if path is not None:
            relations.append(CustomerRelation(model=model, path=path))
    return sorted(relations, key=lambda relation: (relation.depth, relation.label))
