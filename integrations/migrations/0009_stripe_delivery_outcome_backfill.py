"""Existing Stripe deliveries get their outcome and Stripe customer (a migration of its own: on PostgreSQL the
index 0008 adds cannot be built in the transaction that updated the table's rows)."""

from typing import Any

from django.db import migrations
from django.db.models import Exists, OuterRef, Subquery


def outcomes_from_history(apps: Any, schema_editor: Any) -> None:
    """Existing deliveries: refused ones are rejected, a repeat of an already stored event is a duplicate, and
    each takes its event's Stripe customer id (set-based: three UPDATEs)."""
    Delivery = apps.get_model("integrations", "StripeWebhookDelivery")
    StripeEvent = apps.get_model("integrations", "StripeEvent")
    Delivery.objects.filter(status_code__gte=400).update(outcome="rejected")
    earlier = Delivery.objects.filter(event_id=OuterRef("event_id"), pk__lt=OuterRef("pk"))
    Delivery.objects.filter(event__isnull=False).filter(Exists(earlier)).update(outcome="duplicate")
    customer_of_event = StripeEvent.objects.filter(pk=OuterRef("event_id")).values("stripe_customer_id")[:1]
    Delivery.objects.filter(event__isnull=False).update(stripe_customer_id=Subquery(customer_of_event))


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0008_stripe_delivery_outcome"),
    ]

    operations = [
        migrations.RunPython(outcomes_from_history, migrations.RunPython.noop),
    ]
