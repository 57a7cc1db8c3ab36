"""What the integrations layer keeps about traffic crossing the boundary.

The face of the `integrations` app for Django: the Stripe mirror's models live in integrations.stripe.models and
are re-exported here so the app registry finds them; code imports them from their package.
"""

from __future__ import annotations

import base64
import secrets

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from audiences.models import Customer, Source
from config.facts import FactKind
from config.fields import EncryptedTextField
from config.models import TimestampedModel
from integrations.stripe.models import (
    AddOn as AddOn,
)
from integrations.stripe.models import (
    BillingSettings as BillingSettings,
)
from integrations.stripe.models import (
    Charge as Charge,
)
from integrations.stripe.models import (
    Coupon as Coupon,
)
from integrations.stripe.models import (
    CurrencyRate as CurrencyRate,
)
from integrations.stripe.models import (
    Discount as Discount,
)
from integrations.stripe.models import (
    Invoice as Invoice,
)
from integrations.stripe.models import (
    Plan as Plan,
)
from integrations.stripe.models import (
    Product as Product,
)
from integrations.stripe.models import (
    StripeCustomer as StripeCustomer,
)
from integrations.stripe.models import (
    StripeEvent as StripeEvent,
)
from integrations.stripe.models import (
    StripeSyncCursor as StripeSyncCursor,
)
from integrations.stripe.models import (
    StripeWebhookDelivery as StripeWebhookDelivery,
)
from integrations.stripe.models import (
    Subscription as Subscription,
)
from integrations.stripe.models import (
    SubscriptionAddOn as SubscriptionAddOn,
)


class IngestionError(models.Model):
    """A call the tracking API could not accept, kept with its reason so a developer can fix the sender.

    Whole-request failures (bad JSON, oversized body) and single rejected calls inside a batch both land here;
    the payload is truncated so a hostile client cannot fill the disk through this table.
    """

    MAX_PAYLOAD_CHARS = 4000

    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    received_at = models.DateTimeField(db_index=True)
    route = models.CharField(max_length=20)
    message_id = models.CharField(max_length=100, blank=True)
    error = models.TextField()
    payload = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["source", "-received_at"], name="ingestionerror_source_recent")]

    def __str__(self) -> str:
        return f"{self.received_at:%Y-%m-%d %H:%M:%S} {self.route}: {self.error}"


class TrackingPlan(TimestampedModel):
    """What a product promises to send (like Segment Protocols): a JSON Schema per event and for identify traits.

    Connected to sources through SourceTrackingPlan, which says how strictly each source is held to it.
    """

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    identify_schema = models.JSONField(
        default=dict, blank=True, help_text="JSON Schema for identify traits; empty means traits are not checked."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TrackingPlanEvent(models.Model):
    """One planned event and the JSON Schema its properties must satisfy."""

    plan = models.ForeignKey(TrackingPlan, on_delete=models.CASCADE, related_name="events")
    event_name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    properties_schema = models.JSONField(default=dict, blank=True, help_text="JSON Schema for the properties.")

    class Meta:
        ordering = ["event_name"]
        constraints = [models.UniqueConstraint(fields=["plan", "event_name"], name="tracking_plan_event_once")]

    def __str__(self) -> str:
        return self.event_name


class SourceTrackingPlan(models.Model):
    """Which plan a source is held to, and what happens to calls that break it."""

    class Mode(models.TextChoices):
        ALLOW = "allow", "Allow: store everything, check nothing"
        FLAG = "flag", "Flag: store everything, record violations"
        OMIT = "omit", "Omit: drop unplanned properties and traits, record violations"
        BLOCK = "block", "Block: drop unplanned events, record violations"

    source = models.OneToOneField(Source, on_delete=models.CASCADE, related_name="tracking_plan_link")
    plan = models.ForeignKey(TrackingPlan, on_delete=models.CASCADE, related_name="source_links")
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.FLAG)

    def __str__(self) -> str:
        return f"{self.source} → {self.plan} ({self.mode})"


class TrackingPlanViolation(models.Model):
    """A call that broke its source's tracking plan: what was wrong, and what was done about it."""

    class Kind(models.TextChoices):
        UNPLANNED_EVENT = "unplanned_event", "Unplanned event"
        INVALID = "invalid", "Does not match the schema"
        UNPLANNED_PROPERTY = "unplanned_property", "Unplanned property"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    plan = models.ForeignKey(TrackingPlan, on_delete=models.CASCADE, related_name="violations")
    received_at = models.DateTimeField()
    event_name = models.CharField(max_length=200, help_text='The track event, or "identify" for traits.')
    message_id = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    errors = models.JSONField(default=list)
    action = models.CharField(max_length=10, help_text="stored, omitted or blocked")

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["plan", "event_name", "-received_at"], name="violation_plan_event_recent")]

    def __str__(self) -> str:
        return f"{self.event_name}: {self.kind}"


class ImportJob(TimestampedModel):
    """A historical import of events or customers from a CSV or NDJSON file, resumable where it stopped.

    `processed_rows` advances in the same transaction as each chunk's events, so a run that dies resumes
    exactly after the last stored chunk; every row's message id is derived from its content (unless it has
    one), so importing the same file again stores nothing twice.
    """

    MAX_REJECTED_KEPT = 1000

    class Kind(models.TextChoices):
        EVENTS = "events", "Events"
        CUSTOMERS = "customers", "Customers"

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        NDJSON = "ndjson", "NDJSON (one JSON object per line)"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed (can resume)"

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    file_format = models.CharField(max_length=10, choices=Format.choices)
    file_path = models.CharField(max_length=500)
    original_name = models.CharField(max_length=255)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    stored = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected_count = models.PositiveIntegerField(default=0)
    rejected = models.JSONField(default=list, blank=True, help_text="The first rejected rows: row number and reason.")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.kind}, {self.status})"

    @property
    def percent(self) -> int:
        return 100 if not self.total_rows else min(100, round(100 * self.processed_rows / self.total_rows))


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
