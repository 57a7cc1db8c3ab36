"""Filter sets shared by the destination API and pages."""

from __future__ import annotations

import django_filters

from audiences.filters import IdFilter
from config.facts import FactKind
from integrations.destinations.models import DestinationDelivery


class DestinationDeliveryFilter(django_filters.FilterSet):
    """A destination's delivery log by status (e.g. the failures to replay), kind, customer or key."""

    status = django_filters.ChoiceFilter(choices=DestinationDelivery.Status.choices)
    kind = django_filters.ChoiceFilter(choices=FactKind.choices)
    customer = IdFilter(field_name="customer_id")
    idempotency_key = django_filters.CharFilter(field_name="idempotency_key")

    class Meta:
        model = DestinationDelivery
        fields = ["status", "kind", "customer", "idempotency_key"]
