"""The Stripe delivery log says what became of each delivery (accepted, duplicate, ignored, rejected) and which
Stripe customer it names (0009 fills both in for existing rows)."""

from django.db import migrations, models


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
    ]
