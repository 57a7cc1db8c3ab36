"""The Stripe delivery log says what became of each delivery (accepted, duplicate, ignored, rejected) and which
Stripe customer it names; existing rows get both from their answer and their stored event."""

from typing import Any

from django.db import migrations, models
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
        ("integrations", "0007_encrypt_destination_secrets"),
    ]

    operations = [
        migrations.AddField(
            model_name="stripewebhookdelivery",
            name="outcome",
            field=models.CharField(
                choices=[
                    ("accepted", "Accepted"),
                    ("duplicate", "Duplicate (already stored)"),
                    ("ignored", "Ignored (type not handled)"),
                    ("rejected", "Rejected"),
                ],
                default="accepted",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="stripewebhookdelivery",
            name="stripe_customer_id",
            field=models.CharField(blank=True, db_index=True, max_length=255),
        ),
        migrations.RunPython(outcomes_from_history, migrations.RunPython.noop),
    ]
