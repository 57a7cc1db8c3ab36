"""GDPR access requests: everything held about one customer, as JSON-ready data (the rows every foreign-key path
ties to them, and the rows registered erasure rules say are theirs although no foreign key leads to them).
"""

from __future__ import annotations

from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from audiences.models import Account, Customer
from audiences.privacy.relations import customer_relations
from audiences.privacy.rules import registered_rules
from audiences.privacy.traces import person_traces

# Who may export: it is part of answering an access request (CS, Growth, Admin: whoever may edit customers).
EXPORT_PERMISSION = "audiences.change_customer"


def _rows(queryset: models.QuerySet[Any]) -> list[dict[str, Any]]:
    return list(queryset.order_by("pk").values())


def customer_export(customer: Customer) -> dict[str, Any]:
    """Everything held about the customer as JSON-ready data: the profile, then each related model's rows, then
    the rows registered rules say are theirs although no foreign key leads to them (Stripe events, ...).

    One query per related model (the export of a single person, not a bulk path). Values are made JSON-safe
    with Django's encoder (dates, decimals, UUIDs).
    """
    data: dict[str, Any] = {
        "exported_at": timezone.now(),
        "customer": _rows(Customer.objects.filter(pk=customer.pk))[0],
        "records": {},
    }
    if customer.account_id is not None:
        data["account"] = _rows(Account.objects.filter(pk=customer.account_id))[0]
    records: dict[str, list[dict[str, Any]]] = data["records"]
    for relation in customer_relations():
        rows = _rows(relation.model._default_manager.filter(**{relation.path: customer.pk}))
        if rows:
            records[relation.label] = rows
    traces = person_traces(customer)
    for rule in registered_rules():
        if rule.owned is not None:
            rows = _rows(rule.owned(traces))
            if rows:
                records.setdefault(rule.label, []).extend(rows)
    safe: dict[str, Any] = _json_safe(data, DjangoJSONEncoder())
    return safe


def _json_safe(value: Any, encoder: DjangoJSONEncoder) -> Any:
    if isinstance(value, dict):
        return {str(key): _json_safe(item, encoder) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item, encoder) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return encoder.default(value)
