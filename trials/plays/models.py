"""Sales assist's rows: plays, the rep alerts they raise, rep profiles, business hours and holidays.

Kept in trials.plays so plays, alerts and briefs read their own models; trials/models.py only re-exports them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from audiences.models import Customer
from config.models import TimestampedModel
from trials.messaging.models import DEFAULT_HOLDOUT_PERCENT


class Play(TimestampedModel):
    """A sales-assist rule: when a customer (or an account) meets `condition`, a rep gets an alert to act on.

    The condition is a segment-language tree (segments.compiler), so fit/PQL scores, trial timing and behaviour
    are all available and evaluated in SQL. `sla_business_hours` sets the alert's due time in business hours
    (trials.plays.business_hours); `cooldown_hours` is how long after an alert was closed the play may fire again for
    the same customer or account. `test_mode` plays fire only for test customers, so a new rule can be tried
    without paging reps. `holdout_percent` of customers, chosen deterministically, get a holdout alert row that
    never reaches the queue: the control group against which the play's uplift is measured — 10% unless chosen
    otherwise, 0 only with `no_holdout` ticked.
    """

    class Target(models.TextChoices):
        CUSTOMER = "customer", "Customer (one alert per person)"
        ACCOUNT = "account", "Account (one alert per account)"

    key = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    condition = models.JSONField(help_text="A segment-language condition tree.")
    target = models.CharField(max_length=8, choices=Target.choices, default=Target.CUSTOMER)
    priority = models.PositiveIntegerField(default=100, help_text="Lower is more urgent.")
    sla_business_hours = models.PositiveIntegerField(default=4, help_text="Reach out within N business hours.")
    subject = models.CharField(max_length=500, blank=True, help_text="The suggested message's subject.")
    body = models.TextField(blank=True, help_text="The suggested message, pre-filled with the customer's numbers.")
    cooldown_hours = models.PositiveIntegerField(default=168, help_text="Quiet time after an alert is closed.")
    active = models.BooleanField(default=True)
    test_mode = models.BooleanField(default=False, help_text="Fire for test customers only.")
    holdout_percent = models.PositiveSmallIntegerField(
        default=DEFAULT_HOLDOUT_PERCENT, help_text="Customers (or accounts) held out (the control group)."
    )
    no_holdout = models.BooleanField(
        default=False, help_text="Nobody held out (holdout 0): the play's effect cannot be measured."
    )
    notify_assignee = models.BooleanField(default=True, help_text="Email the assignee when an alert is created.")

    class Meta:
        ordering = ["priority", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(holdout_percent__lte=100), name="play_holdout_pct"),
            models.CheckConstraint(
                condition=Q(holdout_percent=0, no_holdout=True) | Q(holdout_percent__gt=0, no_holdout=False),
                name="play_holdout_explicit_zero",
            ),
            models.CheckConstraint(condition=Q(sla_business_hours__gte=1), name="play_sla_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class Alert(models.Model):
    """One play firing for one customer (or account): a task in the rep queue with its SLA and call-prep brief.

    `dedup_key` is `c:<customer id>` or `a:<account id>` (the play's target), and a partial unique constraint
    allows one active alert (open, claimed, snoozed, or holdout) per play and key, so the beat and the
    real-time hook can both evaluate without duplicates. The brief is frozen at creation (what the rep saw is
    what the situation was) and refreshed on demand. Holdout rows are the play's control group: never queued
    or notified.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLAIMED = "claimed", "Claimed"
        SNOOZED = "snoozed", "Snoozed"
        DONE = "done", "Done"
        DISMISSED = "dismissed", "Dismissed"
        HOLDOUT = "holdout", "Holdout (control group)"

    class Outcome(models.TextChoices):
        NONE = "", "—"
        REACHED = "reached", "Reached"
        MEETING_BOOKED = "meeting_booked", "Meeting booked"
        CONVERTED = "converted", "Converted"
        NOT_INTERESTED = "not_interested", "Not interested"
        WRONG_PERSON = "wrong_person", "Wrong person"

    ACTIVE_STATUSES = ("open", "claimed", "snoozed", "holdout")
    QUEUE_STATUSES = ("open", "claimed", "snoozed")
    CLOSED_STATUSES = ("done", "dismissed")

    play = models.ForeignKey(Play, on_delete=models.CASCADE, related_name="alerts")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="alerts")
    account = models.ForeignKey(
        "audiences.Account", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    dedup_key = models.CharField(max_length=40)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    priority = models.PositiveIntegerField(default=100)
    due_at = models.DateTimeField()
    snoozed_until = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True, default=Outcome.NONE)
    notes = models.TextField(blank=True)
    brief = models.JSONField(default=dict, blank=True)
    brief_refreshed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at", "priority", "pk"]
        permissions = [("view_all_alerts", "Can see every rep's alerts, the team load and SLA attainment")]
        constraints = [
            models.UniqueConstraint(
                fields=["play", "dedup_key"],
                condition=Q(status__in=["open", "claimed", "snoozed", "holdout"]),
                name="alert_one_active_per_play",
            ),
            models.CheckConstraint(condition=~Q(status="done") | ~Q(outcome=""), name="alert_done_has_outcome"),
        ]
        indexes = [
            models.Index(fields=["status", "due_at"], name="alert_queue"),
            models.Index(fields=["assignee", "status"], name="alert_assignee"),
            models.Index(fields=["play", "dedup_key", "-closed_at"], name="alert_cooldown"),
        ]

    def __str__(self) -> str:
        return f"{self.play_id} → {self.dedup_key}: {self.status}"


class RepProfile(models.Model):
    """A rep's queue settings: `away` takes them out of round-robin assignment (holiday, sick) without
    removing their role; `last_assigned_at` orders the round robin so assignment stays fair across runs."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rep_profile")
    away = models.BooleanField(default=False)
    last_assigned_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"rep {self.user_id}{' (away)' if self.away else ''}"


class BusinessHours(models.Model):
    """When reps work (one row, pk=1): SLA due times count only these hours, so an alert raised on Friday
    evening is not overdue on Saturday morning. Workdays are ISO weekday numbers (1 = Monday)."""

    time_zone = models.CharField(max_length=64, default="UTC")
    start_hour = models.PositiveSmallIntegerField(default=9)
    end_hour = models.PositiveSmallIntegerField(default=17)
    workdays = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name_plural = "business hours"
        constraints = [
            models.CheckConstraint(condition=Q(start_hour__lt=models.F("end_hour")), name="business_hours_order"),
            models.CheckConstraint(condition=Q(end_hour__lte=24), name="business_hours_end_in_day"),
        ]

    def __str__(self) -> str:
        return "Business hours"


class Holiday(models.Model):
    """A day with no business hours (public holiday, company offsite): SLA clocks skip it."""

    day = models.DateField(unique=True)
    name = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["day"]

    def __str__(self) -> str:
        return f"{self.day} {self.name}".strip()
