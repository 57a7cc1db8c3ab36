"""What the intake layer keeps about incoming traffic: the tracking API's error log, tracking plans and their
violations, and historical import jobs. Re-exported by integrations.models for Django."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from audiences.models import Source
from config.models import TimestampedModel


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
