"""The customer page's segment panel: which segments the customer is in (with a link to explain why), registered
with audiences.panels from SegmentsConfig.ready() — profiles never import the conditions layer."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from audiences.models import Customer
from audiences.panels import CustomerPanel
from segments.selectors import customer_segments


def _membership(request: HttpRequest, customer: Customer) -> dict[str, Any]:
    return {"segments": customer_segments(customer.pk)}


MEMBERSHIP_PANEL = CustomerPanel(name="segments", context=_membership)
