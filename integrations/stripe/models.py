"""The Stripe mirror: the billing catalogue, subscriptions and payments, as Stripe keeps them.

These models are the intake layer's record of billing (mirrored from Stripe, or entered by hand). They were born
in the `trials` app and moved here with their tables (`db_table` keeps each name, state-only migrations moved
them): the app label is `integrations`, the face `integrations.models` re-exports them for Django, and code
imports them from this module.

Amounts are integers in the smallest unit of the price's currency, as Stripe keeps them (cents for USD, yen for
JPY: config.money knows which). `Subscription.mrr_amount` holds the normalised monthly value in the
subscription's own currency and `Subscription.mrr_cents` the same converted to the workspace currency (None when
there is no rate), both computed by integrations.stripe.mrr, so segments and reports can filter and sum them in
SQL. The webhook's log (`StripeEvent`, `StripeWebhookDelivery`, `StripeSyncCursor`) is in
integrations.stripe.event_models.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from audiences.models import Customer
from config.models import TimestampedModel


class BillingInterval(models.TextChoices):
    """How often a recurring price bills, in Stripe's words (MRR normalises each to a month)."""

    DAY = "day", "Day"
    WEEK = "week", "Week"
    MONTH = "month", "Month"
    YEAR = "year", "Year"


class Product(TimestampedModel):
    """A thing sold (Stripe product); plans and add-ons are its prices."""

    stripe_product_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "trials_product"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RecurringPrice(TimestampedModel):
    """What a recurring Stripe price carries: amount, currency, interval and how usage is charged."""

    class UsageType(models.TextChoices):
        LICENSED = "licensed", "Licensed (per seat)"
        METERED = "metered", "Metered"

    class BillingScheme(models.TextChoices):
        PER_UNIT = "per_unit", "Per unit"
        TIERED = "tiered", "Tiered"

    class TiersMode(models.TextChoices):
        NONE = "", "Not tiered"
        GRADUATED = "graduated", "Graduated"
        VOLUME = "volume", "Volume"

    stripe_price_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    name = models.CharField(max_length=255)
    amount_cents = models.BigIntegerField(
        default=0, help_text="Unit amount per interval, in the currency's smallest unit (per-unit prices)."
    )
    amount_decimal = models.DecimalField(
        max_digits=24,
        decimal_places=12,
        null=True,
        blank=True,
        help_text="Stripe's unit_amount_decimal when it has fractions of the smallest unit; else empty.",
    )
    currency = models.CharField(max_length=3, default="usd")
    interval = models.CharField(max_length=5, choices=BillingInterval.choices, default=BillingInterval.MONTH)
    interval_count = models.PositiveSmallIntegerField(default=1)
    usage_type = models.CharField(max_length=10, choices=UsageType.choices, default=UsageType.LICENSED)
    billing_scheme = models.CharField(max_length=8, choices=BillingScheme.choices, default=BillingScheme.PER_UNIT)
    tiers_mode = models.CharField(max_length=9, choices=TiersMode.choices, blank=True, default=TiersMode.NONE)
    tiers = models.JSONField(
        default=list,
        blank=True,
        help_text='Tiers of a tiered price: [{"up_to": N or null, "unit_amount": "…", "flat_amount": "…"}], '
        "amounts as decimal text in the smallest unit.",
    )
    transform_divide_by = models.PositiveIntegerField(
        null=True, blank=True, help_text="Package pricing: the quantity is divided by this before pricing."
    )
    transform_round = models.CharField(max_length=4, blank=True, help_text="up or down (package pricing).")
    active = models.BooleanField(default=True)

    class Meta:
        abstract = True


class Plan(RecurringPrice):
    """A base plan a subscription is on (the subscription's main Stripe price)."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="plans")

    class Meta:
        db_table = "trials_plan"
        ordering = ["product__name", "amount_cents"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gte=0), name="plan_amount_not_negative"),
            models.CheckConstraint(condition=Q(interval_count__gte=1), name="plan_interval_count_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class AddOn(RecurringPrice):
    """An extra recurring price sold on top of a plan (extra seats, a module)."""

    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.PROTECT, related_name="add_ons")

    class Meta:
        db_table = "trials_addon"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gte=0), name="addon_amount_not_negative"),
            models.CheckConstraint(condition=Q(interval_count__gte=1), name="addon_interval_count_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class Subscription(TimestampedModel):
    """A customer's subscription to a plan, in Stripe's own statuses, with trial, period and discount state.

    `stripe_state_at` is the `created` time of the Stripe event whose state is stored, so an older event
    delivered late never overwrites newer state.
    """

    class Status(models.TextChoices):
        INCOMPLETE = "incomplete", "Incomplete"
        INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete, expired"
        TRIALING = "trialing", "Trialing"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due"
        CANCELED = "canceled", "Canceled"
        UNPAID = "unpaid", "Unpaid"
        PAUSED = "paused", "Paused"

    class DiscountDuration(models.TextChoices):
        NONE = "", "No discount"
        ONCE = "once", "Once"
        REPEATING = "repeating", "Repeating"
        FOREVER = "forever", "Forever"

    stripe_subscription_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=20, choices=Status.choices)
    currency = models.CharField(max_length=3, blank=True, help_text="Stripe's currency of the subscription.")
    quantity = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField(help_text="When the subscription was created (Stripe start_date).")
    trial_start = models.DateTimeField(null=True, blank=True)
    trial_end = models.DateTimeField(null=True, blank=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    canceled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    pause_resumes_at = models.DateTimeField(null=True, blank=True, help_text="Set while collection is paused.")
    coupon_id = models.CharField(max_length=255, blank=True)
    discount_percent = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    discount_amount_cents = models.BigIntegerField(null=True, blank=True)
    discount_duration = models.CharField(
        max_length=10, choices=DiscountDuration.choices, blank=True, default=DiscountDuration.NONE
    )
    discount_ids = models.JSONField(
        default=list, blank=True, help_text="Stripe ids of the subscription's discounts, in Stripe's order."
    )
    cancellation_details = models.JSONField(
        default=dict, blank=True, help_text="Stripe's cancellation reason, feedback and comment."
    )
    mrr_amount = models.BigIntegerField(
        default=0, help_text="Normalised monthly recurring revenue in the smallest unit of `currency`."
    )
    mrr_cents = models.BigIntegerField(
        null=True,
        blank=True,
        default=0,
        help_text="The MRR in hundredths of the workspace currency; empty when `currency` has no rate.",
    )
    paid_cents = models.BigIntegerField(
        default=0, help_text="What this subscription's invoices were paid, in cents: its lifetime value."
    )
    stripe_state_at = models.DateTimeField(null=True, blank=True)
    stripe_state = models.JSONField(
        default=dict,
        blank=True,
        help_text="What ordering needs of the event that wrote this state: its lifecycle fields and "
        "previous_attributes (events of the same second are ordered from these).",
    )
    metadata = models.JSONField(default=dict, blank=True)
    add_ons: models.ManyToManyField[AddOn, SubscriptionAddOn] = models.ManyToManyField(
        AddOn, through="SubscriptionAddOn", related_name="subscriptions", blank=True
    )

    class Meta:
        db_table = "trials_subscription"
        ordering = ["-started_at"]
        constraints = [
            models.CheckConstraint(condition=Q(mrr_cents__gte=0), name="subscription_mrr_not_negative"),
            models.CheckConstraint(condition=Q(mrr_amount__gte=0), name="subscription_mrr_amount_not_negative"),
            models.CheckConstraint(
                condition=Q(discount_percent__isnull=True)
                | (Q(discount_percent__gte=0) & Q(discount_percent__lte=100)),
                name="subscription_discount_percent_range",
            ),
            models.CheckConstraint(
                condition=Q(trial_end__isnull=True)
                | Q(trial_start__isnull=True)
                | Q(trial_end__gte=models.F("trial_start")),
                name="subscription_trial_ends_after_start",
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "status"], name="subscription_customer_status"),
            models.Index(fields=["trial_end"], condition=Q(status="trialing"), name="subscription_trialing_end"),
            models.Index(fields=["status", "-started_at"], name="subscription_status_started"),
        ]

    def __str__(self) -> str:
        return f"{self.customer} · {self.plan} ({self.status})"


class SubscriptionAddOn(models.Model):
    """An add-on line on a subscription, with its own quantity."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="add_on_items")
    add_on = models.ForeignKey(AddOn, on_delete=models.PROTECT, related_name="subscription_items")
    quantity = models.PositiveIntegerField(default=1)
    stripe_item_id = models.CharField(max_length=255, null=True, blank=True, unique=True)

    class Meta:
        db_table = "trials_subscriptionaddon"
        constraints = [
            models.UniqueConstraint(fields=["subscription", "add_on"], name="subscription_addon_once"),
        ]

    def __str__(self) -> str:
        return f"{self.add_on} × {self.quantity}"


class StripeCustomer(TimestampedModel):
    """A Stripe customer and the profile it is linked to — or none yet, for a person to resolve.

    Linking is by stored Stripe id, then a unique email match, then `metadata.user_id`; conflicting or
    ambiguous signals leave it unlinked (a payment must never land on the wrong profile). Billing events of
    an unlinked customer wait, and are replayed in order once it is linked. `account` is the company it bills,
    mapped by the rule in BillingSettings (a metadata key or the email's domain).
    """

    class LinkMethod(models.TextChoices):
        NONE = "", "Not linked"
        STRIPE_ID = "stripe_id", "Stored Stripe id"
        EMAIL = "email", "Email"
        USER_ID = "user_id", "metadata.user_id"
        MANUAL = "manual", "Linked by hand"

    stripe_customer_id = models.CharField(max_length=255, unique=True)
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="stripe_customers"
    )
    link_method = models.CharField(max_length=10, choices=LinkMethod.choices, blank=True, default=LinkMethod.NONE)
    unlinked_reason = models.CharField(max_length=255, blank=True)
    email = models.EmailField(max_length=254, blank=True)
    name = models.CharField(max_length=255, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    deleted = models.BooleanField(default=False)
    stripe_state_at = models.DateTimeField(null=True, blank=True)
    account = models.ForeignKey(
        "audiences.Account", null=True, blank=True, on_delete=models.SET_NULL, related_name="stripe_customers"
    )
    account_reason = models.CharField(max_length=255, blank=True, help_text="How the account was found, or why not.")

    class Meta:
        db_table = "trials_stripecustomer"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["customer"], name="stripecustomer_unlinked", condition=Q(customer__isnull=True))
        ]

    def __str__(self) -> str:
        return f"{self.stripe_customer_id} ({self.email or 'no email'})"


class Coupon(TimestampedModel):
    """A Stripe coupon, kept so a subscription's discount can be valued from webhook payloads alone."""

    stripe_coupon_id = models.CharField(max_length=255, unique=True)
    name = models.CharField(max_length=255, blank=True)
    percent_off = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    amount_off_cents = models.BigIntegerField(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    duration = models.CharField(max_length=10, choices=Subscription.DiscountDuration.choices, blank=True)
    duration_in_months = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        db_table = "trials_coupon"

    def __str__(self) -> str:
        return self.name or self.stripe_coupon_id


class Discount(TimestampedModel):
    """A Stripe discount: one coupon applied to a subscription (or to every subscription of a customer).

    Webhook payloads name a subscription's discounts by id only; the discount itself arrives in
    `customer.discount.*` events (or expanded in an API snapshot). Keeping it lets a discount id be valued from
    the coupon behind it without an API call, in whichever order the events come: a subscription waiting for a
    discount or coupon is valued again when it arrives. `removed_at` is set when Stripe deletes the discount or
    a newer subscription state no longer lists it.
    """

    stripe_discount_id = models.CharField(max_length=255, unique=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_subscription_id = models.CharField(
        max_length=255, blank=True, db_index=True, help_text="Empty for a customer-wide discount."
    )
    coupon_id = models.CharField(max_length=255, blank=True, help_text="Empty until the discount's coupon is known.")
    start = models.DateTimeField(null=True, blank=True)
    end = models.DateTimeField(null=True, blank=True, help_text="When a repeating coupon stops applying.")
    removed_at = models.DateTimeField(null=True, blank=True)
    stripe_state_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "trials_discount"
        ordering = ["stripe_discount_id"]

    def __str__(self) -> str:
        return f"{self.stripe_discount_id} ({self.coupon_id or 'coupon unknown'})"


class Charge(TimestampedModel):
    """A Stripe charge: what was paid and refunded, the ground truth of lifetime value."""

    stripe_charge_id = models.CharField(max_length=255, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="charges")
    amount_cents = models.BigIntegerField()
    amount_refunded_cents = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20)
    paid = models.BooleanField(default=False)
    disputed = models.BooleanField(default=False)
    failure_message = models.CharField(max_length=500, blank=True)
    charged_at = models.DateTimeField()

    class Meta:
        db_table = "trials_charge"
        ordering = ["-charged_at"]
        indexes = [models.Index(fields=["customer", "-charged_at"], name="charge_customer_recent")]

    def __str__(self) -> str:
        return f"{self.stripe_charge_id} {self.amount_cents} {self.currency}"


class Invoice(TimestampedModel):
    """A Stripe invoice as far as revenue is concerned: whose, which subscription, what was paid.

    Charges in current API versions no longer name their invoice, so the invoice is where a payment is tied to a
    subscription: the sum of a subscription's paid invoices is its lifetime value (Subscription.paid_cents).
    """

    stripe_invoice_id = models.CharField(max_length=255, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="invoices")
    stripe_subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.SET_NULL, related_name="invoices"
    )
    status = models.CharField(max_length=20)
    amount_paid_cents = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3)
    created_at_stripe = models.DateTimeField()
    line_amounts = models.JSONField(
        default=dict,
        blank=True,
        help_text="What this invoice billed per price for its subscription's items (prorations left out): "
        "{price id: amount in the smallest unit}. Values metered prices, and tiered ones whose tiers are unknown.",
    )

    class Meta:
        db_table = "trials_invoice"
        ordering = ["-created_at_stripe"]

    def __str__(self) -> str:
        return f"{self.stripe_invoice_id} {self.status} {self.amount_paid_cents} {self.currency}"


class BillingSettings(models.Model):
    """How billing is reported and tied to companies (one row, pk=1, created on first use).

    `currency` is the workspace currency every MRR total is shown in (other currencies are converted with
    CurrencyRate; one without a rate is shown on its own). A Stripe customer is mapped to an account (company)
    by `account_metadata_key` — the metadata key holding the account's group id — and, failing that, when
    `account_by_email_domain` is on, by its email's domain matching exactly one account's domain.
    """

    currency = models.CharField(max_length=3, default="usd", help_text="ISO code, e.g. usd, eur, jpy.")
    account_metadata_key = models.CharField(
        max_length=100,
        blank=True,
        help_text="Stripe customer metadata key holding the account's group id (e.g. company_id); empty: not used.",
    )
    account_by_email_domain = models.BooleanField(
        default=False, help_text="Map by the email's domain when exactly one account has it (free-mail excluded)."
    )

    class Meta:
        db_table = "trials_billingsettings"
        verbose_name_plural = "billing settings"

    def __str__(self) -> str:
        return "Billing settings"


class CurrencyRate(TimestampedModel):
    """What one unit of `currency` is worth in the workspace currency, as an admin entered it (no network).

    A table the team keeps by hand, so reported MRR never depends on a feed being up. Changing a rate re-values
    the MRR of every subscription in that currency. Rates are relative to the workspace currency: changing
    that currency removes them.
    """

    currency = models.CharField(max_length=3, unique=True)
    rate = models.DecimalField(max_digits=20, decimal_places=10)

    class Meta:
        db_table = "trials_currencyrate"
        ordering = ["currency"]
        constraints = [models.CheckConstraint(condition=Q(rate__gt=0), name="currency_rate_positive")]

    def __str__(self) -> str:
        return f"1 {self.currency.upper()} = {self.rate}"
