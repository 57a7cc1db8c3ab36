"""The catalogue is a registry: the apps above the conditions layer register their properties with the builders
the compiler and explain need, and the catalogue lists them beside the built-in ones of their group."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from django.db.models import Q

from audiences.models import Customer
from segments.catalogue import PropertySpec, _registered, catalogue, property_named, register_properties
from segments.compiler import compile_tree
from segments.conditions import parse_tree
from segments.value_types import ValueType


def _never(spec: PropertySpec, operator: str, value: Any, now: datetime) -> Q:
    return Q(pk__in=[])


def test_registered_properties_of_trials_and_offers_are_found_with_their_builders() -> None:
    for key in ("trial.stage", "score.pql", "customer.free_mail", "sales.meeting_logged", "subscriber.active_offer_id"):
        spec = property_named(key)
        assert spec is not None and spec.compile is not None and spec.actual is not None, key


@pytest.mark.django_db
def test_a_registered_property_is_listed_after_the_last_of_its_group() -> None:
    keys = [spec.key for spec in catalogue()]
    subscriber = [key for key in keys if key.startswith("subscriber.")]
    assert subscriber[-2:] == ["subscriber.active_offer_id", "subscriber.days_since_saved"]
    assert keys.index("subscriber.days_since_saved") < keys.index("customer.email")


def test_a_built_in_key_or_a_property_without_its_builder_is_refused() -> None:
    with pytest.raises(ValueError, match="built-in"):
        register_properties([PropertySpec("customer.email", "Email", "Customer", ValueType.STRING, "email")])
    with pytest.raises(ValueError, match="compile"):
        register_properties([PropertySpec("x.y", "Y", "X", ValueType.STRING, "y")])
    assert property_named("x.y") is None


@pytest.mark.django_db
def test_a_registered_property_compiles_through_its_builder() -> None:
    register_properties([PropertySpec("test.never", "Never", "Test", ValueType.BOOLEAN, "", compile=_never)])
    try:
        Customer.objects.create(user_id="ada")
        tree = parse_tree({"type": "condition", "property": "test.never", "operator": "is_true"})
        assert not Customer.objects.filter(compile_tree(tree)).exists()
    finally:
        _registered.pop("test.never", None)
