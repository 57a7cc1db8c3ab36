"""The trial loop, lifecycle messages and sales-assist plays.

The billing catalogue and subscriptions a trial points at are the Stripe mirror's (integrations.stripe.models).
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q

from audiences.models import Customer
from config.models import TimestampedModel
from integrations.stripe.models import Subscription

MAX_THROTTLE_HOURS = 24 * 366
#: Every template and play holds this share of customers out by default, so its effect can be measured; 0 only
#: when someone explicitly chooses "no holdout" (`no_holdout`).
DEFAULT_HOLDOUT_PERCENT = 10
#: A longer look-ahead would hold a real-time email back for an email that is not really "about to go".
MAX_PRIORITY_WINDOW_MINUTES = 24 * 60
"""A year: longer windows mean "never again", and past a point the window's start is no longer a date."""


# --- the trial-to-paid loop -----------------------------------------------------------------------------------


class TrialStage(models.TextChoices):
    """The six stages of the Trial-to-Paid Loop, plus `lost`: ended unpaid and past the win-back window."""

    TRIGGER = "trigger", "Trigger"
    ACTIVATE = "activate", "Activate"
    HABIT = "habit", "Habit"
    SIGNAL = "signal", "Signal"
    CONVERT = "convert", "Convert"
    RECOVER = "recover", "Recover"
    LOST = "lost", "Lost"


class Trial(TimestampedModel):
    """One trial: a trialing subscription, or a signup without billing (from the configured signup event).

    Its stage and scores are derived from the customer's data by trials.loop and kept here (not computed on
    read) so segments, the list and the loop board filter and count them in SQL. Milestone times are sticky:
    once a trial reached habit it stays past it even if later data would no longer show it. `next_check_at`
    is the next moment time alone may change the trial (habit window closing, trial ending, win-back window
    ending, behaviour decay); the beat sweep processes only trials that are due. `is_current` marks the
    customer's latest trial, the one segment properties read.
    """

    class Model(models.TextChoices):
        OPT_IN = "opt_in", "Opt-in (no card)"
        OPT_OUT = "opt_out", "Opt-out (card on file)"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="trials")
    subscription = models.OneToOneField(
        Subscription, null=True, blank=True, on_delete=models.SET_NULL, related_name="trial"
    )
    model = models.CharField(max_length=7, choices=Model.choices, default=Model.OPT_IN)
    started_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    source = models.CharField(max_length=100, blank=True)
    use_case = models.CharField(max_length=255, blank=True)
    is_current = models.BooleanField(default=True)
    stage = models.CharField(max_length=10, choices=TrialStage.choices, default=TrialStage.TRIGGER)
    stage_changed_at = models.DateTimeField()
    activated_at = models.DateTimeField(null=True, blank=True)
    habit_at = models.DateTimeField(null=True, blank=True)
    signal_at = models.DateTimeField(null=True, blank=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    fit_score = models.IntegerField(default=0)
    behaviour_score = models.IntegerField(default=0)
    pql_score = models.IntegerField(default=0)
    score_breakdown = models.JSONField(default=dict, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["ends_at"]
        constraints = [
            models.UniqueConstraint(fields=["customer"], condition=Q(is_current=True), name="trial_one_current"),
            models.CheckConstraint(condition=Q(ends_at__gte=models.F("started_at")), name="trial_ends_after_start"),
        ]
        indexes = [
            models.Index(fields=["next_check_at"], name="trial_due", condition=Q(next_check_at__isnull=False)),
            models.Index(fields=["stage", "ends_at"], name="trial_stage_ends"),
        ]

    def __str__(self) -> str:
        return f"{self.customer} · {self.stage}"

    @property
    def opt_in(self) -> bool:
        return self.model == self.Model.OPT_IN


class TrialStageChange(models.Model):
    """A trial moving from one stage to another, with when: the loop board's flows and the customer's history."""

    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="stage_changes")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="trial_stage_changes")
    from_stage = models.CharField(max_length=10, choices=TrialStage.choices, blank=True)
    to_stage = models.CharField(max_length=10, choices=TrialStage.choices)
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["-changed_at", "-pk"]
        indexes = [models.Index(fields=["changed_at"], name="trialstagechange_time")]

    def __str__(self) -> str:
        return f"{self.from_stage or '—'} → {self.to_stage}"


class ActivationDefinition(models.Model):
    """What the growth team calls activation and habit (one row, pk=1, seeded by a migration).

    Activation holds when the customer performed `activation_event` at least `activation_count` times within
    `activation_within_hours` of the trial's start (no limit when empty) AND, when set, `activation_condition`
    (a condition tree in the segment language, compiled by segments.compiler) holds. Habit is
    `habit_threshold` high-intent actions (`habit_events`) within `habit_window_days` of the start. A signup
    without billing starts a trial of `trial_days` on `signup_event`.
    """

    activation_event = models.CharField(max_length=255, blank=True)
    activation_count = models.PositiveIntegerField(default=1)
    activation_within_hours = models.PositiveIntegerField(null=True, blank=True)
    activation_condition = models.JSONField(null=True, blank=True)
    habit_events = models.JSONField(default=list, blank=True)
    habit_threshold = models.PositiveIntegerField(default=3)
    habit_window_days = models.PositiveIntegerField(default=7)
    signup_event = models.CharField(max_length=255, blank=True, default="Signed Up")
    trial_days = models.PositiveIntegerField(default=14)
    recover_window_days = models.PositiveIntegerField(default=30)

    def __str__(self) -> str:
        return "Activation definition"


class FitRule(models.Model):
    """One firmographic rule of the fit score: when the attribute matches, the points are added (may be negative).

    Attributes are read from the customer's traits, then the account's; `email_domain` is the email's domain.
    """

    class Operator(models.TextChoices):
        EQUALS = "equals", "equals"
        ONE_OF = "one_of", "is one of (comma-separated)"
        CONTAINS = "contains", "contains"
        ENDS_WITH = "ends_with", "ends with"
        BETWEEN = "between", "is between (low-high)"
        GTE = "gte", "is at least"
        FREE_MAIL = "free_mail", "is a free-mail domain"

    attribute = models.CharField(max_length=100)
    operator = models.CharField(max_length=10, choices=Operator.choices)
    value = models.CharField(max_length=500, blank=True)
    points = models.IntegerField()
    label = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.label or f"{self.attribute} {self.operator} {self.value}"


class ScoreSettings(models.Model):
    """How fit and behaviour make the PQL score (one row, pk=1, seeded by a migration).

    behaviour = min(100, activation_points + action_points × high-intent actions since the start), halved every
    `decay_half_life_days` of inactivity; PQL = fit × fit_weight + behaviour × behaviour_weight (weights in %).
    A trial is product-qualified (stage signal) once activated with PQL ≥ `pql_threshold`.
    """

    base_fit = models.IntegerField(default=10)
    fit_weight = models.PositiveIntegerField(default=40)
    behaviour_weight = models.PositiveIntegerField(default=60)
    activation_points = models.PositiveIntegerField(default=40)
    action_points = models.PositiveIntegerField(default=10)
    decay_half_life_days = models.PositiveIntegerField(default=7)
    pql_threshold = models.PositiveIntegerField(default=60)
    high_fit = models.PositiveIntegerField(default=70)
    medium_fit = models.PositiveIntegerField(default=40)
    free_mail_domains = models.TextField(
        default="gmail.com yahoo.com hotmail.com outlook.com icloud.com proton.me protonmail.com aol.com gmx.com "
        "mail.com yandex.com live.com",
        help_text="Whitespace-separated.",
    )

    def __str__(self) -> str:
        return "Score settings"


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

    Subject and bodies are Django template language, rendered by trials.emails in a sandbox (a fixed variable
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


# --- sales-assist plays and the rep alert queue ---------------------------------------------------------------

from django.conf import settings  # noqa: E402  (this section was appended; the user model is swappable)


class Play(TimestampedModel):
    """A sales-assist rule: when a customer (or an account) meets `condition`, a rep gets an alert to act on.

    The condition is a segment-language tree (segments.compiler), so fit/PQL scores, trial timing and behaviour
    are all available and evaluated in SQL. `sla_business_hours` sets the alert's due time in business hours
    (trials.business_hours); `cooldown_hours` is how long after an alert was closed the play may fire again for
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
