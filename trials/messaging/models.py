"""Lifecycle messaging's rows: the workspace email settings, message templates, per-customer send locks and the
log of every send decision.

Kept in trials.messaging so emails and in-app prompts read their own models; the app's trials/models.py only
re-exports them for Django.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q

from audiences.models import Customer

MAX_THROTTLE_HOURS = 24 * 366
"""A year: longer windows mean "never again", and past a point the window's start is no longer a date."""
#: Every template and play holds this share of customers out by default, so its effect can be measured; 0 only
#: when someone explicitly chooses "no holdout" (`no_holdout`).
DEFAULT_HOLDOUT_PERCENT = 10
#: A longer look-ahead would hold a real-time email back for an email that is not really "about to go".
MAX_PRIORITY_WINDOW_MINUTES = 24 * 60


class EmailSettings(models.Model):
    """Workspace-wide lifecycle email rules (one row, pk=1, seeded by a migration).

    The throttle window, quiet hours and the sender live in the database rather than in settings so the growth
    team can change them without a deploy; a template may override the window with its own `throttle_hours`.
    """

    throttle_hours = models.PositiveIntegerField(
        default=24,
        validators=[MaxValueValidator(MAX_THROTTLE_HOURS)],
        help_text="At most one lifecycle email per window.",
    )
    quiet_start_hour = models.PositiveSmallIntegerField(default=21, help_text="Local hour (0-23) quiet hours start.")
    quiet_end_hour = models.PositiveSmallIntegerField(default=8, help_text="Local hour (0-23) quiet hours end.")
    default_time_zone = models.CharField(max_length=64, default="UTC")
    from_email = models.CharField(max_length=254, blank=True, help_text="Empty: DEFAULT_FROM_EMAIL.")
    priority_window_minutes = models.PositiveIntegerField(
        default=15,
        validators=[MaxValueValidator(MAX_PRIORITY_WINDOW_MINUTES)],
        help_text="A less important email yields when a more important one is due for the customer within this "
        "many minutes (0: only emails decided together are compared).",
    )

    def __str__(self) -> str:
        return "Email settings"


class MessageTemplate(models.Model):
    """A lifecycle message (email or in-app prompt) with its trigger, conditions, priority and holdout.

    Subject and bodies are Django template language, rendered by trials.messaging.render in a sandbox (a fixed variable
    set, few tags, autoescaping in HTML); they are validated when saved so a missing variable never reaches a
    send. Time-based triggers (trial day N, trial ends in N hours) fire from a durable timer per customer when
    they fall due — at `send_at_local_time` in the customer's zone when set — outside quiet hours; event and
    audience triggers fire as they happen. `priority` orders a customer's templates wherever they are decided
    (lower first): a template yields to a more important one due for the customer within the workspace's
    priority window, and `when_outranked` says whether it then waits to be decided again after that one or is
    dropped. `holdout_percent` of customers, chosen deterministically, are logged as holdout instead of being
    sent the message: 10% unless chosen otherwise, and 0 only with `no_holdout` ticked, so an email nobody can
    measure is a decision.
    """

    class WhenOutranked(models.TextChoices):
        WAIT = "wait", "Wait, and be decided again after the more important email"
        DROP = "drop", "Drop (not sent for this trigger)"

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        IN_APP = "in_app", "In-app"

    class Trigger(models.TextChoices):
        EVENT = "event", "Event performed"
        AUDIENCE = "audience", "Audience entered"
        TRIAL_DAY = "trial_day", "Trial day N"
        TRIAL_ENDS_IN = "trial_ends_in", "Trial ends in N hours"

    key = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=255)
    channel = models.CharField(max_length=6, choices=Channel.choices, default=Channel.EMAIL)
    active = models.BooleanField(default=True)
    subject = models.CharField(max_length=500, blank=True)
    html_body = models.TextField(blank=True)
    text_body = models.TextField(blank=True)
    trigger = models.CharField(max_length=13, choices=Trigger.choices)
    trigger_event = models.CharField(max_length=255, blank=True, help_text="For 'event performed'.")
    trigger_segment = models.ForeignKey(
        "segments.Segment", null=True, blank=True, on_delete=models.SET_NULL, related_name="message_templates"
    )
    trigger_number = models.PositiveIntegerField(null=True, blank=True, help_text="N days or N hours.")
    send_at_local_time = models.TimeField(
        null=True,
        blank=True,
        help_text="Trial day N / trial ends in N hours: send at this time of day in the customer's zone, the "
        "first time it comes once the trigger is due (empty: the moment it is due).",
    )
    condition = models.JSONField(null=True, blank=True, help_text="A segment-language condition tree.")
    priority = models.PositiveIntegerField(default=100, help_text="Lower wins when several qualify.")
    throttle_hours = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_THROTTLE_HOURS)],
        help_text="Empty: the workspace window.",
    )
    when_outranked = models.CharField(
        max_length=4,
        choices=WhenOutranked.choices,
        default=WhenOutranked.WAIT,
        help_text="When a more important email is due for the customer within the priority window.",
    )
    holdout_percent = models.PositiveSmallIntegerField(
        default=DEFAULT_HOLDOUT_PERCENT, help_text="Customers held out (the control group), chosen per customer."
    )
    no_holdout = models.BooleanField(
        default=False, help_text="Nobody held out (holdout 0): the email's effect cannot be measured."
    )

    class Meta:
        ordering = ["priority", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(holdout_percent__lte=100), name="message_template_holdout_pct"),
            models.CheckConstraint(
                condition=Q(holdout_percent=0, no_holdout=True) | Q(holdout_percent__gt=0, no_holdout=False),
                name="message_template_holdout_explicit_zero",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CustomerMessageLock(models.Model):
    """One row per customer that a send locks (SELECT … FOR UPDATE) while it checks and records the throttle.

    Two workers deciding for the same customer serialise on this row, so the check of the last send and the
    insert of the new one happen as one step: never two lifecycle emails inside the window.
    """

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="message_lock", primary_key=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"lock {self.customer_id}"


class MessageSend(models.Model):
    """The log: every send decision for a customer and template, with its reason and delivery status.

    Suppressions are rows too (status `suppressed` or `holdout` with a reason), so the team can see why a
    customer did not get a message, and holdout rows are the control group for uplift. An email that yielded
    to a more important one due soon is `deferred` (decided again after that one) or `dropped`.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SUPPRESSED = "suppressed", "Suppressed"
        HOLDOUT = "holdout", "Holdout"
        DEFERRED = "deferred", "Deferred (waits for a more important email)"
        DROPPED = "dropped", "Dropped (outranked)"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="message_sends")
    template = models.ForeignKey(MessageTemplate, on_delete=models.CASCADE, related_name="sends")
    status = models.CharField(max_length=10, choices=Status.choices)
    reason = models.CharField(max_length=255, blank=True)
    to_email = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    # In-app prompts: what the product reported back through the in-app API for this prompt.
    shown_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    dismissed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["customer", "-created_at"], name="message_send_customer_time")]

    def __str__(self) -> str:
        return f"{self.template_id} → {self.customer_id}: {self.status}"
