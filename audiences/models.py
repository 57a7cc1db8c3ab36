"""Customer profiles and what they did.

One Customer row per person, whichever ids they arrived with; Accounts group customers of a B2B buyer;
Events are the append-only timeline everything downstream (traits, segments, plays) is computed from.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from config.fields import EncryptedTextField
from config.models import TimestampedModel


class Source(TimestampedModel):
    """Where events come from (a product's Segment library, Stripe, an import), with its write key and secret key.

    The write key names the source and sits in every customer's browser (analytics.js), so it proves nothing about
    who is asking: only a SHA-256 of it is stored, and it is shown once, at creation or rotation.

    The secret key (`tlsk_…`) stays on the product's servers and proves the caller is the product: its server
    signs a customer id with it (`auth_hash`, HMAC-SHA256) before the browser may start a cancellation session
    for that customer, or calls with it directly. The server must compute that HMAC, so the key is stored
    encrypted (config.fields), not hashed; its SHA-256 is stored beside it to find the source a server call
    names. It is shown once, at creation or rotation; after a rotation the previous key keeps working for
    audiences.services.SECRET_KEY_OVERLAP, so the product can deploy the new one without refused calls.

    `cancel_page_frame_ancestors` lists the origins allowed to embed the hosted cancellation page of sessions
    this source starts (its Content-Security-Policy `frame-ancestors`); empty: the page cannot be framed.
    """

    class Kind(models.TextChoices):
        TRACKING_API = "tracking_api", "Tracking API"
        STRIPE = "stripe", "Stripe"
        IMPORT = "import", "Import"
        TRIALLOOP = "trialloop", "Trialloop (audience and trait events)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.TRACKING_API)
    write_key_hash = models.CharField(max_length=64, unique=True)
    write_key_prefix = models.CharField(max_length=12, help_text="First characters of the key, for recognising it.")
    is_active = models.BooleanField(default=True)
    key_rotated_at = models.DateTimeField(null=True, blank=True)
    secret_key = EncryptedTextField(editable=False)
    secret_key_digest = models.CharField(max_length=64, unique=True, editable=False)
    secret_key_prefix = models.CharField(
        max_length=12, editable=False, help_text="First characters of the secret key, for recognising it."
    )
    previous_secret_key = EncryptedTextField(blank=True, editable=False)
    previous_secret_key_digest = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    cancel_page_frame_ancestors = models.JSONField(
        default=list,
        blank=True,
        help_text="Origins (https://… or 'self') allowed to embed the hosted cancellation page; empty: none.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Account(TimestampedModel):
    """A B2B customer organisation (Segment `group`): its firmographic traits and its members' seats."""

    group_id = models.CharField(max_length=255, unique=True, help_text="The product's id for the group.")
    name = models.CharField(max_length=255, blank=True)
    domain = models.CharField(max_length=255, blank=True, db_index=True)
    traits = models.JSONField(default=dict, blank=True)
    trait_timestamps = models.JSONField(
        default=dict,
        blank=True,
        help_text="Per trait, [event time, event id] of the group call that set it: only a newer call replaces it.",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_accounts",
        help_text="Account owner among the reps; alerts for this account go to them first.",
    )

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=~Q(group_id=""), name="account_group_id_not_empty")]

    def __str__(self) -> str:
        return self.name or self.group_id


class Customer(TimestampedModel):
    """One person, with every id they are known by, their traits, consent and revenue summary.

    `user_id` and `stripe_customer_id` identify at most one customer each (NULL when unknown, never "");
    anonymous ids live in AnonymousId so one customer can carry many. Email is not unique: people share
    addresses and Stripe allows duplicates, so matching by email is a fallback, not a key. Each trait set by an
    identify call remembers that call's time (`trait_timestamps`), so a late or replayed call never puts back an
    older value.
    """

    class SubscriberStatus(models.TextChoices):
        NONE = "", "Not a subscriber"
        ACTIVE = "active", "Active"
        CANCELED = "canceled", "Canceled"
        SAVED = "saved", "Saved"
        REACTIVATED = "reactivated", "Reactivated"

    user_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    email = models.EmailField(max_length=254, blank=True, db_index=True)
    stripe_customer_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    name = models.CharField(max_length=255, blank=True)
    traits = models.JSONField(default=dict, blank=True)
    trait_timestamps = models.JSONField(
        default=dict,
        blank=True,
        help_text="Per trait, [event time, event id] of the identify call that set it: only a newer call replaces it.",
    )
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="members")
    consent = models.JSONField(
        default=dict,
        blank=True,
        help_text='Consent per category, e.g. {"email": true, "destinations": false}; a missing category means yes.',
    )
    is_test = models.BooleanField(default=False, help_text="Test customers are only touched by test-mode flows.")
    subscriber_status = models.CharField(
        max_length=20, choices=SubscriberStatus.choices, blank=True, default=SubscriberStatus.NONE
    )
    mrr_cents = models.BigIntegerField(
        null=True,
        blank=True,
        default=0,
        help_text="Sum of the subscriptions' normalised MRR, in hundredths of the workspace currency; empty when "
        "part of it is in a currency without a rate.",
    )
    ltv_cents = models.BigIntegerField(default=0, help_text="Total paid, net of refunds.")
    first_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(user_id=""), name="customer_user_id_not_empty"),
            models.CheckConstraint(condition=~Q(stripe_customer_id=""), name="customer_stripe_id_not_empty"),
            models.CheckConstraint(condition=Q(mrr_cents__gte=0), name="customer_mrr_not_negative"),
        ]
        indexes = [models.Index(fields=["subscriber_status", "-id"], name="customer_status_newest")]

    def __str__(self) -> str:
        return self.name or self.email or self.user_id or f"Customer {self.pk}"

    def has_consent(self, category: str) -> bool:
        """Consent is opt-out: a category counts as given unless explicitly set to false."""
        return self.consent.get(category, True) is not False


class AnonymousId(models.Model):
    """An anonymous id (a device or browser before sign-in) pointing at the customer it belongs to."""

    anonymous_id = models.CharField(max_length=255, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="anonymous_ids")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=~Q(anonymous_id=""), name="anonymous_id_not_empty")]

    def __str__(self) -> str:
        return self.anonymous_id


class Event(models.Model):
    """One Segment-style call (track, identify, page, screen, group, alias) attributed to a customer.

    Built for tens of millions of rows: a bigint key, no relation but the customer and source (and those without
    database constraints, see below), and indexes shaped for the questions segments ask ("did EVENT in the
    window", "timeline of a customer").
    `(source, message_id)` is unique so a client's retries are stored once.
    """

    class Type(models.TextChoices):
        TRACK = "track", "Track"
        IDENTIFY = "identify", "Identify"
        PAGE = "page", "Page"
        SCREEN = "screen", "Screen"
        GROUP = "group", "Group"
        ALIAS = "alias", "Alias"

    id = models.BigAutoField(primary_key=True)
    # No database-level foreign keys and no single-column indexes on these two: each FK check locks the
    # referenced row for every inserted event (about 40% of the insert's cost at ingestion rates), and the
    # composite indexes below already lead with them. Deleting a customer still deletes its events: Django
    # applies on_delete itself, and every deletion here goes through the ORM.
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="+", db_constraint=False, db_index=False)
    message_id = models.CharField(max_length=100)
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="events", db_constraint=False, db_index=False
    )
    type = models.CharField(max_length=10, choices=Type.choices)
    name = models.CharField(max_length=200, blank=True, help_text="Event name (track) or page/screen name.")
    user_id = models.CharField(max_length=255, blank=True, help_text="userId as received.")
    anonymous_id = models.CharField(max_length=255, blank=True, help_text="anonymousId as received.")
    group_id = models.CharField(
        max_length=255, blank=True, help_text="groupId of a group call, or context.groupId of any other."
    )
    properties = models.JSONField(default=dict, blank=True, help_text="Properties, or traits for identify/group.")
    context = models.JSONField(default=dict, blank=True)
    timestamp = models.DateTimeField(help_text="When it happened, corrected for client clock skew.")
    original_timestamp = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "message_id"], name="event_unique_message_per_source"),
            models.CheckConstraint(condition=~Q(message_id=""), name="event_message_id_not_empty"),
        ]
        indexes = [
            models.Index(fields=["customer", "name", "timestamp"], name="event_customer_name_time"),
            models.Index(fields=["customer", "-timestamp"], name="event_customer_timeline"),
            models.Index(fields=["name", "timestamp"], name="event_name_time"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.name}".strip()


class ProfileMerge(TimestampedModel):
    """A record of identity resolution joining (or refusing to join) two profiles.

    An anonymous profile is folded into the identified one when a call links the two ids; its events, ids and
    everything else move over and the row says what moved. Two profiles that each carry a different known
    user id are never merged: the refusal is recorded here instead, for a person to look at.
    """

    class Outcome(models.TextChoices):
        MERGED = "merged", "Merged"
        REFUSED = "refused", "Refused: both profiles have a user id"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="merges")
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    other_customer_id = models.BigIntegerField(help_text="The merged (now deleted) or the conflicting profile.")
    linking_id = models.CharField(max_length=255, help_text="The anonymous or previous id that linked the two.")
    message_id = models.CharField(max_length=100, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.outcome} {self.other_customer_id} → {self.customer_id} via {self.linking_id}"


class ComputedTrait(TimestampedModel):
    """A per-customer value derived from events (a count, a sum, the last plan viewed, ...), defined by the growth
    team and kept current as events arrive, so segments, audiences and templates can use it like any trait.

    Values live in ComputedTraitValue; every change of a value is kept in ComputedTraitChange.
    """

    class Kind(models.TextChoices):
        COUNT = "count", "Event count"
        SUM = "sum", "Sum of a property"
        AVERAGE = "average", "Average of a property"
        MIN = "min", "Minimum of a property"
        MAX = "max", "Maximum of a property"
        UNIQUE_DAYS = "unique_days", "Unique days active"
        FIRST_VALUE = "first_value", "First value of a property"
        LAST_VALUE = "last_value", "Last value of a property"
        MOST_FREQUENT = "most_frequent", "Most frequent value of a property"
        UNIQUE_LIST = "unique_list", "Unique list of a property's values"
        UNIQUE_COUNT = "unique_count", "Count of a property's unique values"
        EVER = "ever", "Ever performed the event"
        DAYS_SINCE_LAST = "days_since_last", "Days since the event was last performed"
        TRIAL_DAYS_REMAINING = "trial_days_remaining", "Trial days remaining"

    class Backfill(models.TextChoices):
        PENDING = "pending", "Waiting to start"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    key = models.CharField(
        max_length=100,
        unique=True,
        help_text="Used in segments as computed.<key> and in templates; letters, digits and _.",
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    event = models.CharField(max_length=200, blank=True, help_text="The event counted or read (not for trial days).")
    property = models.CharField(max_length=200, blank=True, help_text="The event property read, for value kinds.")
    where = models.JSONField(
        default=list, blank=True, help_text="Property filters on the events, as in segment event conditions."
    )
    window_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Only events of the last N days count; empty for all time."
    )
    since_trial_start = models.BooleanField(
        default=False, help_text="Only events since the start of the customer's current trial count."
    )
    backfill_status = models.CharField(max_length=10, choices=Backfill.choices, default=Backfill.PENDING)
    backfill_total = models.PositiveIntegerField(default=0, help_text="Customers to compute in the backfill.")
    backfill_done = models.PositiveIntegerField(default=0)
    backfill_started_at = models.DateTimeField(null=True, blank=True)
    backfill_finished_at = models.DateTimeField(null=True, blank=True)
    backfill_error = models.TextField(blank=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(condition=~Q(key=""), name="computed_trait_key_not_empty"),
            models.CheckConstraint(
                condition=Q(window_days__isnull=True) | Q(window_days__gt=0), name="computed_trait_window_positive"
            ),
            models.CheckConstraint(
                condition=Q(window_days__isnull=True) | Q(since_trial_start=False), name="computed_trait_one_window"
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.key


class ComputedTraitValue(models.Model):
    """A customer's current value of a computed trait, with the running state it is updated from.

    The value is kept in one typed column (number, text, boolean or timestamp) so segment conditions compare it
    with an index-friendly SQL comparison; `value` is the same value for display and export; `state` is what an
    incremental update needs (counts per value, first/last event, ...). `expires_at` is when time alone will
    change the value (a windowed trait's oldest event leaving the window), for the decay sweep.
    """

    trait = models.ForeignKey(ComputedTrait, on_delete=models.CASCADE, related_name="values")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="computed_values")
    value = models.JSONField(null=True, blank=True)
    number_value = models.FloatField(null=True, blank=True)
    # NULL (no value) differs from "" (an empty text value) for "is set", as for every other column here.
    text_value = models.TextField(null=True, blank=True)  # noqa: DJ001
    bool_value = models.BooleanField(null=True, blank=True)
    date_value = models.DateTimeField(null=True, blank=True)
    state = models.JSONField(default=dict, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["trait", "customer"], name="computed_value_once")]
        indexes = [
            models.Index(fields=["trait", "number_value"], name="computed_value_number"),
            models.Index(fields=["expires_at"], name="computed_value_expiry", condition=Q(expires_at__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.trait_id}={self.value!r} for {self.customer_id}"


class ComputedTraitChange(models.Model):
    """History: a computed trait's value for a customer changed from `old` to `new` at a time."""

    trait = models.ForeignKey(ComputedTrait, on_delete=models.CASCADE, related_name="changes")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="computed_changes")
    old = models.JSONField(null=True, blank=True)
    new = models.JSONField(null=True, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["customer", "-at"], name="computed_change_customer"),
            models.Index(fields=["trait", "-at"], name="computed_change_trait"),
        ]

    def __str__(self) -> str:
        return f"{self.trait_id} {self.old!r} → {self.new!r} for {self.customer_id}"


class AppliedEventBatch(models.Model):
    """A stored batch whose events were folded into computed traits, keyed by its first event id (batches never
    share events): recorded in the same transaction as the fold, so a retried task cannot count a batch twice."""

    first_event_id = models.BigIntegerField(primary_key=True)
    applied_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"batch from event {self.first_event_id}"


class ErasedIdentity(models.Model):
    """A tombstone left by a GDPR erasure: a keyed digest of one id the erased customer was known by.

    Ingestion drops calls that would recreate a profile under such an id (only ids it does not already know are
    checked, so the steady stream of known customers costs nothing). Only digests are kept: the tombstone must
    not itself hold the personal data it stands for.
    """

    class Kind(models.TextChoices):
        USER_ID = "user_id", "User id"
        ANONYMOUS_ID = "anonymous_id", "Anonymous id"

    digest = models.CharField(max_length=64, primary_key=True)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    erased_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"erased {self.kind} {self.digest[:12]}…"


class CustomerErasure(models.Model):
    """The record that a customer was erased: when, by whom, how many rows of each kind went or were redacted,
    whether later calls under their ids are suppressed. It names the customer only by its former row id."""

    customer_pk = models.BigIntegerField()
    erased_at = models.DateTimeField()
    erased_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    via = models.CharField(max_length=10, help_text="ui, api or command")
    suppress_future_events = models.BooleanField(default=True)
    deleted_rows = models.JSONField(default=dict, help_text="Rows deleted per model label.")
    redacted_rows = models.JSONField(
        default=dict, help_text="Rows (and files) outside the profile whose mentions were redacted, per label."
    )

    class Meta:
        ordering = ["-erased_at"]

    def __str__(self) -> str:
        return f"customer {self.customer_pk} erased {self.erased_at:%Y-%m-%d %H:%M}"


class UnqueuedEventBatch(models.Model):
    """A stored batch whose profile task could not be queued because the broker was unreachable.

    The events are durable before the tracking API answers, so a broker outage must not turn them into a 500
    nor drop what they imply for profiles: the batch is written down here instead, keyed by its first event id
    (batches never share events), and the periodic requeue queues its task once the broker is back.
    """

    first_event_id = models.BigIntegerField(primary_key=True)
    event_ids = models.JSONField(help_text="The stored events of the batch, as the task takes them.")
    created_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"unqueued batch from event {self.first_event_id}"


class PendingEventBatch(models.Model):
    """A stored batch whose profile work (profiles, computed traits, live audiences and what follows) is not
    applied yet: written in the transaction that stores its events, deleted in the one that applies them.

    Why: the worker applies the batches waiting together (audiences.pipeline.pending_batches_apply) — one pass of
    set-based statements for all of them instead of one per batch — so when it falls behind, the cost per event
    falls as the backlog grows and the backlog drains instead of growing without bound. Keyed by the batch's
    first event id (batches never share events).
    """

    first_event_id = models.BigIntegerField(primary_key=True)
    event_ids = models.JSONField(help_text="The stored events of the batch.")
    created_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"pending batch from event {self.first_event_id}"
