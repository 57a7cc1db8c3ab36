"""Segments: named condition trees with tags, and their materialised membership with enter/exit history."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from audiences.models import Customer
from config.models import TimestampedModel


class CustomProperty(TimestampedModel):
    """A customer or account trait declared with a type, so conditions on it are checked and compared correctly."""

    class Scope(models.TextChoices):
        CUSTOMER = "customer", "Customer trait (identify)"
        ACCOUNT = "account", "Account trait (group)"

    class ValueType(models.TextChoices):
        STRING = "string", "Text"
        NUMBER = "number", "Number"
        BOOLEAN = "boolean", "True / false"
        DATE = "date", "Date (ISO 8601)"
        LIST = "list", "List of text"

    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.CUSTOMER)
    key = models.CharField(
        max_length=100,
        validators=[
            RegexValidator(r"^[A-Za-z_][A-Za-z0-9_]*$", "Letters, digits and _ only, not starting with a digit.")
        ],
        help_text="The trait's key in identify calls (customer) or group calls (account).",
    )
    label = models.CharField(max_length=200, blank=True)
    value_type = models.CharField(max_length=10, choices=ValueType.choices)

    class Meta:
        ordering = ["scope", "key"]
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="custom_property_once_per_scope")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key} ({self.value_type})"


class SegmentTag(models.Model):
    """A label to find segments by (ProsperStack-style tags)."""

    name = models.CharField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Segment(TimestampedModel):
    """A named condition tree; its members are materialised so downstream features read a table, not a query."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    tags = models.ManyToManyField(SegmentTag, blank=True, related_name="segments")
    conditions = models.JSONField(help_text="The validated condition tree (segments.conditions).")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    draft_conditions = models.JSONField(
        null=True, blank=True, help_text="Test mode: an unpublished edit of the conditions; live membership ignores it."
    )
    draft_test_customers = models.ManyToManyField(
        Customer,
        blank=True,
        related_name="forced_into_segment_drafts",
        help_text="Test customers counted in the draft whatever the conditions, for trying flows end to end.",
    )
    draft_author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    draft_updated_at = models.DateTimeField(null=True, blank=True)
    is_live = models.BooleanField(
        default=False,
        help_text="A live audience: membership follows events within about a second, entries and exits are "
        "recorded on the customer timeline and sent to destinations.",
    )
    audience_key = models.SlugField(
        max_length=100,
        blank=True,
        help_text="The trait name downstream tools see (identify {audience_key: true}); from the name if empty.",
    )
    member_count = models.PositiveIntegerField(default=0)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    last_evaluation_ms = models.PositiveIntegerField(null=True, blank=True)
    evaluation_failing_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Set when an evaluation fails, kept while the following ones fail too, cleared by one that works.",
    )
    evaluation_error = models.TextField(blank=True, help_text="Why the latest evaluation failed.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def evaluation_failure(self) -> str:
        """'evaluation failing since …: reason' while evaluations fail, else empty — as the UI and API show it."""
        if self.evaluation_failing_since is None:
            return ""
        return f"evaluation failing since {self.evaluation_failing_since.isoformat()}: {self.evaluation_error}"


class SegmentMembership(models.Model):
    """A customer currently in a segment, since when. One row per stay: an exit deletes it and a new entry makes
    a new row, so its id names the entry that publications of a live audience are keyed by."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="segment_memberships")
    entered_at = models.DateTimeField()
    published_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When this entry was published (timeline, destinations, hooks); empty while the segment is not a "
        "live audience. Claimed by a conditional update, so no path publishes one entry twice.",
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["segment", "customer"], name="segment_member_once")]

    def __str__(self) -> str:
        return f"{self.customer_id} in {self.segment_id}"


class SegmentMembershipChange(models.Model):
    """History: a customer entered or exited a segment at a time (written only when membership changes)."""

    class Kind(models.TextChoices):
        ENTERED = "entered", "Entered"
        EXITED = "exited", "Exited"

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="changes")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="segment_changes")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["segment", "-at"], name="segmentchange_recent")]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.kind} {self.segment_id}"


class SegmentVersion(models.Model):
    """A published state of a segment: who changed it, when, and what it was — so any version can be read,
    compared with the one before, and restored."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list)
    conditions = models.JSONField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["segment", "number"], name="segment_version_number_once")]

    def __str__(self) -> str:
        return f"{self.segment_id} v{self.number}"
