"""The trial-to-paid loop's own rows: trials with their stage and scores, stage history, the activation
definition, fit rules and score settings.

They live in trials.loop (not the app-wide trials/models.py face) so the loop's code reads its own models; the
Stripe mirror a trial points at (integrations.stripe.models) is intake, a layer below.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from audiences.models import Customer
from config.models import TimestampedModel
from integrations.stripe.models import Subscription


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

    Its stage and scores are derived from the customer's data by trials.loop.lifecycle and kept here (not computed on
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
    """One firmographic rule of the fit score: when its condition holds for the customer, the points are added
    (may be negative).

    `condition` is a condition tree in the segment language (segments.conditions.parse_tree), compiled by
    segments.compiler like activation definitions, email triggers and play conditions: traits are `trait.<key>` /
    `account.trait.<key>`, the email's domain `customer.email_domain`, a free-mail address `customer.free_mail`
    (registered by trials.loop.conditions from the score settings' list).
    """

    condition = models.JSONField()
    points = models.IntegerField()
    label = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.label or f"Fit rule {self.pk}"


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
