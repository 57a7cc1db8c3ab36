"""Retention offers, the rules that pick them, cancellation flows and the sessions a product runs through them.

The shape follows what a cancellation-flow tool needs and no more:

- an `Offer` is one thing a customer may accept instead of canceling (discount, trial extension, pause, plan
  change, or a redirect to support); its `parameters` are validated per kind by `offers.parameters`;
- a `FlowRule` picks the `CancellationFlow` (which reasons to ask, whether to ask for feedback, how to cancel)
  and an `OfferRule` picks the offer once the reason is known; both are ordered lists where the first rule that
  matches wins, and both can be drafts that only test sessions (test customers) see;
- a `CancellationSession` is one customer going through a flow, with every step recorded in `SessionStep`
  (the Stripe calls it made, with their idempotency keys, so a failed step is retried with the same request).

`CancellationSession.accepted_offer`, `outcome`, `outcome_at` and `offer_active_until` are plain columns so
segments can compile "active offer id" and "days since saved" to SQL.
"""

from __future__ import annotations

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from audiences.models import Customer, Source
from config.models import TimestampedModel
from integrations.stripe.models import Subscription
from segments.models import Segment

HOSTED_LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("fr", "Français"), ("es", "Español")]
"""The languages the hosted page is written in (its strings are translated in offers/locale/)."""


class OfferTag(models.Model):
    """A label to group and find offers by (e.g. `win-back`, `annual`)."""

    name = models.CharField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Offer(TimestampedModel):
    """Something a customer can accept instead of canceling, applied through the Stripe API on acceptance.

    Win-back offers for lapsed trials are ordinary offers (a trial extension or a discount) tagged as such.
    """

    class Kind(models.TextChoices):
        DISCOUNT = "discount", "Discount"
        TRIAL_EXTENSION = "trial_extension", "Trial extension"
        PAUSE = "pause", "Pause"
        PLAN_CHANGE = "plan_change", "Plan change"
        REDIRECT = "redirect", "Contact support / redirect"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    parameters = models.JSONField(default=dict, blank=True, help_text="Validated per kind (offers.parameters).")
    headline = models.CharField(max_length=200, blank=True, help_text="What the customer is shown.")
    body = models.TextField(blank=True)
    tags = models.ManyToManyField(OfferTag, blank=True, related_name="offers")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CancellationReason(TimestampedModel):
    """An answer to "why are you canceling?", mapped to the feedback value Stripe keeps on the subscription."""

    class StripeFeedback(models.TextChoices):
        CUSTOMER_SERVICE = "customer_service", "Customer service"
        LOW_QUALITY = "low_quality", "Low quality"
        MISSING_FEATURES = "missing_features", "Missing features"
        OTHER = "other", "Other"
        SWITCHED_SERVICE = "switched_service", "Switched service"
        TOO_COMPLEX = "too_complex", "Too complex"
        TOO_EXPENSIVE = "too_expensive", "Too expensive"
        UNUSED = "unused", "Unused"

    label = models.CharField(max_length=200)
    stripe_feedback = models.CharField(max_length=20, choices=StripeFeedback.choices, default=StripeFeedback.OTHER)
    position = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return self.label


class CancellationFlow(TimestampedModel):
    """The steps a canceling customer goes through: the reason question, optional feedback, the offer and the
    confirmation — and how the subscription is canceled at the end (at period end, or at once)."""

    name = models.CharField(max_length=200, unique=True)
    reasons = models.ManyToManyField(CancellationReason, blank=True, related_name="flows")
    ask_feedback = models.BooleanField(default=True, help_text="Ask for free-text feedback after the reason.")
    feedback_prompt = models.CharField(max_length=300, blank=True, default="Anything we could have done better?")
    confirmation_message = models.TextField(blank=True, default="Your subscription has been canceled.")
    cancel_immediately = models.BooleanField(
        default=False, help_text="Cancel at once instead of at the end of the paid period."
    )
    brand_name = models.CharField(max_length=100, blank=True, help_text="Shown at the top of the hosted page.")
    brand_color = models.CharField(
        max_length=7,
        default="#2f54eb",
        validators=[RegexValidator(r"^#[0-9A-Fa-f]{6}$", "A colour as #RRGGBB.")],
        help_text="The hosted page's accent colour (#RRGGBB).",
    )
    logo_url = models.URLField(
        max_length=500,
        blank=True,
        validators=[RegexValidator(r"^https://", "The logo must be an https:// address.")],
        help_text="An https:// image shown at the top of the hosted page (served by you, not uploaded).",
    )
    language = models.CharField(
        max_length=5,
        blank=True,
        choices=HOSTED_LANGUAGES,
        help_text="The hosted page's language; empty = the customer's browser language (Accept-Language).",
    )
    feedback_reasons = models.ManyToManyField(
        CancellationReason,
        blank=True,
        related_name="feedback_flows",
        help_text="Ask for feedback only after these reasons; none chosen = after every reason.",
    )
    is_active = models.BooleanField(default=True)
    is_draft = models.BooleanField(default=True, help_text="Drafts are only used in test sessions (test customers).")

    class Meta:
        ordering = ["name"]

    def asks_feedback_for(self, reason_id: int | None) -> bool:
        """Whether the feedback step follows this answer: the step condition is the flow's feedback reasons."""
        if not self.ask_feedback:
            return False
        chosen = {reason.pk for reason in self.feedback_reasons.all()}
        return not chosen or reason_id in chosen

    def __str__(self) -> str:
        return self.name


class RuleBase(TimestampedModel):
    """What flow rules and offer rules share: a position in an ordered list, an on/off switch, a draft flag."""

    name = models.CharField(max_length=200, blank=True)
    position = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    is_draft = models.BooleanField(default=True, help_text="Drafts are only used in test sessions (test customers).")

    class Meta:
        abstract = True
        ordering = ["position", "pk"]


class FlowRule(RuleBase):
    """Customers in any of the segments (any customer when none is chosen) get this flow; the first match wins."""

    segments = models.ManyToManyField(Segment, blank=True, related_name="flow_rules")
    flow = models.ForeignKey(CancellationFlow, on_delete=models.CASCADE, related_name="rules")

    class Meta(RuleBase.Meta):
        pass

    def __str__(self) -> str:
        return self.name or f"Flow rule {self.pk} → {self.flow}"


class OfferRule(RuleBase):
    """Customers in any of the segments who gave any of the reasons (empty = any) get one of the offers —
    weighted when several — or no offer; the first match wins.

    Unless `allow_repeat`, a customer who accepted an offer in the last `repeat_window_days` is not offered
    another by this rule.
    """

    class AppliesTo(models.TextChoices):
        CANCELLATION = "cancellation", "Cancellation sessions"
        WIN_BACK = "win_back", "Win-back sessions (lapsed trials)"

    applies_to = models.CharField(
        max_length=20,
        choices=AppliesTo.choices,
        default=AppliesTo.CANCELLATION,
        help_text="Which sessions the rule is tried in; win-back sessions ask no reason, so reasons are ignored.",
    )
    segments = models.ManyToManyField(Segment, blank=True, related_name="offer_rules")
    reasons = models.ManyToManyField(CancellationReason, blank=True, related_name="offer_rules")
    offers: models.ManyToManyField[Offer, OfferRuleOffer] = models.ManyToManyField(
        Offer, through="OfferRuleOffer", blank=True, related_name="rules"
    )
    no_offer = models.BooleanField(default=False, help_text="Matching customers are shown no offer.")
    allow_repeat = models.BooleanField(default=False)
    repeat_window_days = models.PositiveIntegerField(default=90, validators=[MinValueValidator(1)])

    class Meta(RuleBase.Meta):
        pass

    def __str__(self) -> str:
        return self.name or f"Offer rule {self.pk}"


class OfferRuleOffer(models.Model):
    """An offer of a rule with its weight (the chance it is picked is weight ÷ the rule's total weight)."""

    rule = models.ForeignKey(OfferRule, on_delete=models.CASCADE, related_name="weighted_offers")
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="rule_entries")
    weight = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "offer"], name="offer_rule_offer_once"),
            models.CheckConstraint(condition=Q(weight__gte=1), name="offer_rule_offer_weight_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.offer} × {self.weight}"


class CancellationSession(TimestampedModel):
    """One customer going through a cancellation flow for one subscription, from start to outcome.

    `token` is the session's public id, in the API's paths, exports, timeline events and destination payloads; it
    is not a credential: acting on a session takes a `SessionToken` handed out when it was started by a caller
    with proof of who asked (offers.access). A session stays `incomplete` until it is
    saved (an offer accepted), canceled, or deflected (the customer went to support, or left: an incomplete
    session becomes deflected 24 hours after it started).

    A `win_back` session is the same object for a trial that lapsed unpaid in the last 30 days: no reason is
    asked, the offer is picked by the win-back offer rules, and accepting it ends the session `recovered`
    (declining or leaving: deflected). `subscription` is then the lapsed one, and `recovered_subscription_id`
    the Stripe subscription the accepted offer created.
    """

    class Stage(models.TextChoices):
        REASON = "reason", "Waiting for the reason"
        OFFER = "offer", "Offer presented"
        CONFIRM = "confirm", "Waiting for the cancel confirmation"
        DONE = "done", "Done"

    class Outcome(models.TextChoices):
        INCOMPLETE = "incomplete", "Incomplete"
        SAVED = "saved", "Saved"
        CANCELED = "canceled", "Canceled"
        DEFLECTED = "deflected", "Deflected"
        RECOVERED = "recovered", "Recovered (win-back)"

    class Kind(models.TextChoices):
        CANCELLATION = "cancellation", "Cancellation"
        WIN_BACK = "win_back", "Win-back (lapsed trial)"

    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.CANCELLATION)
    token = models.CharField(max_length=64, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="cancellation_sessions")
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="cancellation_sessions")
    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    flow = models.ForeignKey(CancellationFlow, on_delete=models.PROTECT, related_name="sessions")
    is_test = models.BooleanField(default=False, help_text="A test customer's session: no Stripe call is made.")
    stage = models.CharField(max_length=10, choices=Stage.choices, default=Stage.REASON)
    reason = models.ForeignKey(
        CancellationReason, null=True, blank=True, on_delete=models.PROTECT, related_name="sessions"
    )
    feedback = models.TextField(blank=True)
    offer_rule = models.ForeignKey(OfferRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    offered_offer = models.ForeignKey(
        Offer, null=True, blank=True, on_delete=models.PROTECT, related_name="offered_sessions"
    )
    accepted_offer = models.ForeignKey(
        Offer, null=True, blank=True, on_delete=models.PROTECT, related_name="accepted_sessions"
    )
    offer_active_until = models.DateTimeField(
        null=True, blank=True, help_text="When the accepted offer's effect ends; empty while it lasts for ever."
    )
    offer_simulated = models.BooleanField(default=False, help_text="Test session: the offer was not sent to Stripe.")
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.INCOMPLETE)
    outcome_at = models.DateTimeField(null=True, blank=True)
    mrr_cents = models.BigIntegerField(
        null=True,
        blank=True,
        default=0,
        help_text="The subscription's MRR when the session started, in hundredths of the workspace currency "
        "(empty: its currency had no rate).",
    )
    recovered_subscription_id = models.CharField(
        max_length=255, blank=True, help_text="Win-back: the Stripe subscription created by the accepted offer."
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["outcome", "created_at"], name="cancelsession_outcome_created"),
            models.Index(fields=["customer", "-outcome_at"], name="cancelsession_customer_outcome"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(outcome="incomplete") | Q(outcome_at__isnull=False), name="cancelsession_outcome_dated"
            ),
            # One open session per subscription: two starts at the same moment resume the same session.
            models.UniqueConstraint(
                fields=["subscription"], condition=Q(outcome="incomplete"), name="cancelsession_one_open_per_sub"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer} · {self.outcome} ({self.token[:8]}…)"


class SessionToken(models.Model):
    """Proof that the caller may act on one cancellation session: handed out (once, in clear) by a start whose
    caller proved who asked — the product's server with the source's secret key, or the customer's browser with
    an `auth_hash` the product's server signed — and required by every later call and by the hosted page.

    The token is random (`tlst_` + 32 random bytes) and only its SHA-256 is stored, like write keys, so the
    database holds nothing that could be replayed. It is bound to its session, and so to that session's customer
    and subscription, and it expires (CANCELLATION_SESSION_TOKEN_MINUTES, 30 by default; a win-back email's link
    when its session ends). Expired tokens are kept a day, so a late caller is told "expired" rather than
    "invalid", then purged.
    """

    session = models.ForeignKey(CancellationSession, on_delete=models.CASCADE, related_name="access_tokens")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"session token of {self.session_id}, until {self.expires_at:%Y-%m-%d %H:%M}"


class SessionStep(models.Model):
    """One step of a session (start, reason, accept, decline, confirm cancel, expire) and what it sent to Stripe.

    A step that calls Stripe is planned once — `stripe_calls` holds each request with its parameters and
    idempotency key — so retrying a failed step re-sends exactly the same requests under the same keys (after a
    card or validation error, which Stripe stores under the key, the next generation of keys is used).
    """

    class Kind(models.TextChoices):
        START = "start", "Started"
        REASON = "reason", "Reason given"
        ACCEPT = "accept", "Offer accepted"
        DECLINE = "decline", "Offer declined"
        CONFIRM_CANCEL = "confirm_cancel", "Cancel confirmed"
        EXPIRE = "expire", "Expired (deflected)"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SIMULATED = "simulated", "Simulated (test session)"

    session = models.ForeignKey(CancellationSession, on_delete=models.CASCADE, related_name="steps")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SUCCEEDED)
    data = models.JSONField(default=dict, blank=True)
    stripe_calls = models.JSONField(default=list, blank=True, help_text="Planned requests, keys and answers.")
    attempts = models.PositiveIntegerField(default=1)
    key_generation = models.PositiveIntegerField(default=1)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["session", "kind"], name="session_step_once")]

    def __str__(self) -> str:
        return f"{self.session_id} {self.kind} ({self.status})"


class WinBackEmail(models.Model):
    """The win-back email Trialloop sent — or decided not to send, and why — for one lapsed trial.

    One row per lapsed subscription (a unique constraint), so the sweep that sends them may run as often as it
    likes and a customer gets at most one win-back email per lapsed trial. A send that is only postponed (quiet
    hours, the lifecycle throttle) writes no row: the next sweep decides again.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        SUPPRESSED = "suppressed", "Suppressed"
        FAILED = "failed", "Failed"

    subscription = models.OneToOneField(Subscription, on_delete=models.CASCADE, related_name="win_back_email")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="win_back_emails")
    session = models.ForeignKey(
        CancellationSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="win_back_emails"
    )
    status = models.CharField(max_length=10, choices=Status.choices)
    reason = models.CharField(max_length=300, blank=True, help_text="Why it was suppressed.")
    to_email = models.EmailField(blank=True)
    subject = models.CharField(max_length=300, blank=True)
    language = models.CharField(max_length=5, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"win-back email to {self.customer_id}: {self.status}"
