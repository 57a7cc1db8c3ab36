"""What the outbound layer keeps: the destinations results are sent to, and one delivery row per message and
destination. Re-exported by integrations.models for Django."""

from __future__ import annotations

import base64
import secrets

from django.core.validators import RegexValidator
from django.db import models

from audiences.models import Customer
from config.facts import FactKind
from config.fields import EncryptedTextField
from config.models import TimestampedModel

consent_category_validator = RegexValidator(
    r"^[a-z][a-z0-9_]*$", "Use lower-case letters, digits and underscores, e.g. “destinations”."
)


def signing_secret_generate() -> str:
    """A new webhook signing secret in the Standard Webhooks form: `whsec_` and 32 random bytes in base64, which the
    scheme's official verifying libraries take as they are."""
    return f"whsec_{base64.b64encode(secrets.token_bytes(32)).decode()}"


class Destination(TimestampedModel):
    """Somewhere Trialloop's results go: a signed webhook, or a Segment-compatible API fed identify/track calls.

    Messages reach a destination through DestinationDelivery rows (one per message), so a slow or failing
    receiver never holds up the work that produced them, and every attempt is logged. A paused destination
    keeps collecting deliveries and sends them once resumed. The signing secret must be usable in clear because
    every webhook is signed with it, so it is stored encrypted (config.fields), not hashed; the previous one stays
    valid for a day after a rotation so receivers can switch without dropping messages. The write key, a
    credential for the receiving Segment workspace, is stored encrypted too.
    """

    class Kind(models.TextChoices):
        WEBHOOK = "webhook", "Webhook (signed JSON)"
        SEGMENT = "segment", "Segment-compatible API (identify/track)"

    DEFAULT_CONSENT_CATEGORY = "destinations"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.WEBHOOK)
    url = models.URLField(
        max_length=500,
        help_text="Webhook: the URL each message is POSTed to. Segment: the API's base URL; batches go to /v1/batch.",
    )
    signing_secret = EncryptedTextField(default=signing_secret_generate)
    previous_signing_secret = EncryptedTextField(blank=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    write_key = EncryptedTextField(blank=True, help_text="Segment kind: the receiving source's write key.")
    kinds = models.JSONField(default=list, help_text="The OutboundKind values this destination receives.")
    consent_category = models.CharField(
        max_length=50,
        default=DEFAULT_CONSENT_CATEGORY,
        validators=[consent_category_validator],
        help_text="Customers whose consent for this category is withdrawn are not sent (missing means given).",
    )
    is_paused = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DestinationDelivery(models.Model):
    """One message for one destination: its payload as it will be sent, and how sending it went.

    At-least-once: a delivery is retried with backoff until its receiver answers 2xx, refuses it for good, or
    the attempts run out; the idempotency key travels with it so receivers can drop repeats, and is unique
    per destination so emitting the same message twice creates one delivery. Skipped deliveries (consent
    withdrawn, no id to send) are kept with their reason so the log explains why nothing went out.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    MAX_ATTEMPTS = 8
    MAX_IDEMPOTENCY_KEY_LENGTH = 90

    # No index of its own: the composite indexes below all start with the destination.
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    kind = models.CharField(max_length=20, choices=FactKind.choices)
    # Kept when the customer is deleted (merged): the log stays, and the payload holds who it was about.
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    idempotency_key = models.CharField(max_length=MAX_IDEMPOTENCY_KEY_LENGTH)
    payload = models.JSONField(help_text="The body as sent: the webhook JSON, or the Segment calls.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="When a pending delivery is due.")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_failed_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, help_text="Why the last attempt failed, or why it was skipped.")
    delivered_at = models.DateTimeField(null=True, blank=True, help_text="When a receiver last accepted it.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "destination deliveries"
        constraints = [
            models.UniqueConstraint(fields=["destination", "idempotency_key"], name="destination_delivery_once"),
        ]
        indexes = [
            # What is due: the sweep's "any due for this destination?" and each flush's oldest-first fetch.
            models.Index(
                fields=["destination", "next_attempt_at"],
                condition=models.Q(status="pending"),
                name="destinationdelivery_due",
            ),
            # The delivery log, newest first; filtered by status, and the pending/failed counts of the health.
            models.Index(fields=["destination", "-id"], name="destinationdelivery_log"),
            models.Index(fields=["destination", "status", "-id"], name="destinationdelivery_status"),
            # Recent success rate and last failure of the health summary.
            models.Index(fields=["destination", "last_attempt_at"], name="destinationdelivery_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.destination} {self.kind} {self.idempotency_key} ({self.status})"
