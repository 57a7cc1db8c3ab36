"""Test factories: a valid row of any model, for tests that must cover every model of a kind (GDPR walks every
model tied to a customer; the role matrix needs one object behind every URL)."""

from __future__ import annotations

import itertools
import uuid
from datetime import date
from decimal import Decimal
from typing import Any

from django.db import models
from django.utils import timezone

from audiences.models import Customer

_counter = itertools.count(1)


def value_for(field: models.Field[Any, Any], customer: Customer, built: dict[type[models.Model], models.Model]) -> Any:
    """A valid value for a required field: the customer itself, a built related row, or a plain unique value."""
    if isinstance(field, models.ForeignKey):
        target = field.related_model
        assert isinstance(target, type)
        if target is Customer:
            return customer
        return built.get(target) or build(target, customer, built)
    if field.choices:
        return field.choices[0][0]
    number = next(_counter)
    if isinstance(field, models.EmailField):
        return f"person{number}@example.test"
    if isinstance(field, models.GenericIPAddressField):
        return "192.0.2.1"
    if isinstance(field, models.UUIDField):
        return uuid.uuid4()
    if isinstance(field, models.CharField | models.TextField):
        return f"{field.name}-{number}"[: field.max_length or 100]
    if isinstance(field, models.BooleanField):
        return False
    if isinstance(field, models.DateTimeField):
        return timezone.now()
    if isinstance(field, models.DateField):
        return date.today()
    if isinstance(field, models.DecimalField):
        return Decimal(1)
    if isinstance(field, models.IntegerField | models.FloatField):
        return number
    if isinstance(field, models.JSONField):
        return {}
    raise AssertionError(f"no test value for {field.model._meta.label}.{field.name} ({type(field).__name__})")


def build(model: type[models.Model], customer: Customer, built: dict[type[models.Model], models.Model]) -> models.Model:
    """One row of any model, every required field filled; rows of other models it needs are built (once)."""
    values: dict[str, Any] = {}
    for field in model._meta.concrete_fields:
        if field.primary_key and isinstance(field, models.AutoField | models.BigAutoField):
            continue
        if isinstance(field, models.ForeignKey) and field.related_model is Customer:
            values[field.name] = customer
            continue
        if (
            field.null
            or field.has_default()
            or getattr(field, "auto_now", False)
            or getattr(field, "auto_now_add", False)
        ):
            continue
        values[field.name] = value_for(field, customer, built)
    row = model._default_manager.create(**values)
    built[model] = row
    return row
