"""The Stripe webhook's log: `StripeEvent` is the webhook's unit of work (stored once, processed exactly once),
`StripeWebhookDelivery` every POST as received, and `StripeSyncCursor` how far a backfill got. Kept apart from the
billing mirror (integrations.stripe.models) they feed; same app label `integrations`, so the face
`integrations.models` re-exports them for Django and no migration moved them.
"""

from __future__ import annotations

from django.db import models

from config.models import TimestampedModel


class StripeEvent(TimestampedModel):
    """One Stripe event, stored once however often it is delivered, and processed exactly once.

    The row is the unit of work: a worker locks it, applies it, and marks it processed in the same
    transaction; a failure is recorded, retried with backoff, and can be replayed from the UI.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be processed"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed (will retry)"
        WAITING = "waiting", "Waiting for its customer to be linked"
        IGNORED = "ignored", "Nothing to do"

    MAX_ATTEMPTS = 8

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    created = models.DateTimeField(help_text="When Stripe created the event (orders state changes).")
    livemode = models.BooleanField(default=False)
    payload = models.JSONField()
    object_id = models.CharField(max_length=255, blank=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="stripeevent_due")]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type} ({self.status})"


class StripeWebhookDelivery(models.Model):
    """Every POST to the Stripe webhook endpoint as received, valid or not, for the delivery log.

    `outcome` says what the endpoint made of it, so the log tells a refused delivery (Stripe retries it and
    eventually disables the endpoint) from one accepted and ignored because Trialloop does not use its type.
    `stripe_customer_id` is the customer the event names, kept so an erasure finds the delivery by index.
    `headers` keeps a few harmless request headers, never the Stripe-Signature value (a credential for its body,
    and these rows go into the customer's export) nor Authorization: `signed_at` and `signature_secret` keep
    what the log needs of the signature.
    """

    MAX_BODY_CHARS = 200_000

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        DUPLICATE = "duplicate", "Duplicate (already stored)"
        IGNORED = "ignored", "Ignored (type not handled)"
        REJECTED = "rejected", "Rejected"

    received_at = models.DateTimeField(db_index=True)
    event = models.ForeignKey(StripeEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries")
    event_type = models.CharField(max_length=100, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.ACCEPTED)
    stripe_customer_id = models.CharField(max_length=255, blank=True, db_index=True)
    signature_valid = models.BooleanField(default=False)
    signed_at = models.DateTimeField(
        null=True, blank=True, help_text="The Stripe-Signature header's t= (when Stripe signed), if it had one."
    )
    signature_secret = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Which STRIPE_WEBHOOK_SECRETS entry verified the signature (1 = the first), at the time.",
    )
    status_code = models.PositiveSmallIntegerField()
    error = models.TextField(blank=True)
    headers = models.JSONField(default=dict)
    body = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.received_at:%Y-%m-%d %H:%M:%S} {self.event_type or '?'} → {self.status_code}"


class StripeSyncCursor(TimestampedModel):
    """How far a backfill got through one Stripe collection, so an interrupted `stripe_sync` resumes there."""

    collection = models.CharField(max_length=50, unique=True)
    last_id = models.CharField(max_length=255, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.collection} after {self.last_id or 'start'}"
