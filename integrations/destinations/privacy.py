"""What GDPR erasure (audiences.privacy) does with what went out: deliveries kept after their profile was merged
away are deleted whole (their payload still says who they were about); the others go with their customer."""

from __future__ import annotations

from typing import Any

from django.db import models

from audiences.privacy.rules import Action, ErasureRule
from audiences.privacy.traces import PersonTraces
from integrations.destinations.models import DestinationDelivery


def _deliveries_without_customer(traces: PersonTraces) -> models.QuerySet[Any]:
    """Deliveries whose profile was merged away: their payload still says who they were about."""
    return DestinationDelivery.objects.filter(customer__isnull=True)


ERASURE_RULES = [
    ErasureRule("integrations.DestinationDelivery", action=Action.DELETE, searched=_deliveries_without_customer),
]
