"""Stripe webhook deliveries stop keeping the Stripe-Signature value among their headers (a credential for the
body, and the customer export hands these rows out): the rows already stored lose it — and any Authorization
header — keeping only the signature's `t=` as `signed_at`. Which secret verified an old delivery was never
recorded, so `signature_secret` stays empty for them."""

from datetime import UTC, datetime
from typing import Any

from django.db import migrations, models

BATCH = 1000
CREDENTIAL_HEADERS = {"stripe-signature", "authorization"}
LATEST_CREATED = int(datetime(3000, 1, 1, tzinfo=UTC).timestamp())


def _signed_at(signature: Any) -> datetime | None:
    """The first `t=` of a Stripe-Signature value as a time (this migration's own copy of
    integrations.stripe_webhooks.signature_time, so later changes there cannot change what it did)."""
    if not isinstance(signature, str):
        return None
    for item in signature.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            stamp = value.strip()
            if stamp.isascii() and stamp.isdigit() and int(stamp) < LATEST_CREATED:
                return datetime.fromtimestamp(int(stamp), tz=UTC)
            return None
    return None


def strip_signatures(apps: Any, schema_editor: Any) -> None:
    """Rewrite every delivery whose headers hold a credential, BATCH rows at a time by primary key (the log can be
    long; no cursor stays open on the table while it is written, which SQLite does not isolate)."""
    Delivery = apps.get_model("integrations", "StripeWebhookDelivery")
    last_pk = 0
    while batch := list(Delivery.objects.filter(pk__gt=last_pk).only("pk", "headers").order_by("pk")[:BATCH]):
        last_pk = batch[-1].pk
        changed = []
        for delivery in batch:
            headers = delivery.headers if isinstance(delivery.headers, dict) else {}
            credentials = {name for name in headers if name.lower() in CREDENTIAL_HEADERS}
            if not credentials:
                continue
            signature = next((headers[name] for name in credentials if name.lower() == "stripe-signature"), None)
            delivery.signed_at = _signed_at(signature)
            delivery.headers = {name: value for name, value in headers.items() if name not in credentials}
            changed.append(delivery)
        Delivery.objects.bulk_update(changed, ["headers", "signed_at"])


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0009_stripe_delivery_outcome_backfill"),
    ]

    operations = [
        migrations.AddField(
            model_name="stripewebhookdelivery",
            name="signature_secret",
            field=models.PositiveSmallIntegerField(
                blank=True,
                help_text="Which STRIPE_WEBHOOK_SECRETS entry verified the signature (1 = the first), at the time.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="stripewebhookdelivery",
            name="signed_at",
            field=models.DateTimeField(
                blank=True, help_text="The Stripe-Signature header's t= (when Stripe signed), if it had one.", null=True
            ),
        ),
        # Not reversible: the signatures are gone (the reverse only keeps the rows as they are).
        migrations.RunPython(strip_signatures, migrations.RunPython.noop),
    ]
