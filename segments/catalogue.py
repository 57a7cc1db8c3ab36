"""The property catalogue: every property a condition may name, its type, and where it lives in the database.

Five kinds of location, each compiled by segments.compiler into a condition on Customer:
- a customer column or a path from the customer (`account__name`);
- a subscription column or path (`plan__interval`): the condition holds when the customer has at least one
  subscription for which it holds (ProsperStack's subscription-level properties);
- a key of the customer's traits, or of the traits of the customer's account, for the declared custom properties
  (segments.models.CustomProperty): `path` is the JSON column, `json_key` the key — data, never part of a lookup;
- a computed trait's typed value column (audiences.models.ComputedTraitValue), `computed.<key>`;
- a property an app above the conditions layer registers (`register_properties`, from its AppConfig.ready()) with
  its own builders: the condition (`compile`) and, for explain, the customer's value (`actual`) — the trial loop's
  `trial.*`, `score.*` and `sales.*` (trials.loop and trials.plays), the offers' `subscriber.active_offer_id` and
  `subscriber.days_since_saved` (offers.conditions). The catalogue and the compiler never import those apps.
Money is stated in currency units in conditions and stored in cents; `scale` converts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q

from audiences.models import ComputedTrait, Customer
from segments.models import CustomProperty
from segments.traits.kinds import EMPTY_VALUES, trait_value_type, value_column
from segments.value_types import ValueType

EVENT_FILTER_OPERATORS = {"equals", "not_equals", "contains", "is_set", "is_not_set"}


@dataclass(frozen=True)
class PropertySpec:
    """One property: its key in conditions, label, group in the picker, type, and database location."""

    key: str
    label: str
    group: str
    value_type: ValueType
    path: str
    on_subscription: bool = False
    scale: int = 1
    choices: tuple[str, ...] = ()
    is_json: bool = False
    json_key: str = ""  # a custom property: the key read in the JSON column `path`
    on_account: bool = False  # a custom property of the customer's account (group traits)
    # "predicate": yes/no computed from the row; "age_days" / "days_until": days since / to `path`;
    # "active_offer" / "days_since_saved": read from the customer's saved cancellation sessions (offers app);
    # "active_coupon": the coupons discounting the customer now (trials' mirrored Stripe discounts).
    # "email_domain": the part of the email after the @, lowercased (none without an @).
    # "account_members" / "account_active_members": how many customers share the account (active: seen in the last
    # ACTIVE_MEMBER_DAYS days); "meeting_logged": a rep closed an alert on the customer or account as a meeting.
    derived: str = ""
    computed_trait_id: int | None = None  # a computed trait: `path` is the ComputedTraitValue column compared
    empty: Any = None  # a computed trait's value for a customer without one (0 for counts, false for "ever")
    # A registered property's builders: the condition on Customer for (spec, operator, value, now), and the
    # customer's value as the condition compares it, for explain.
    compile: Callable[[PropertySpec, str, Any, datetime], Q] | None = field(default=None, compare=False)
    actual: Callable[[PropertySpec, Customer, datetime], Any] | None = field(default=None, compare=False)


SUBSCRIBER_STATUSES = ("active", "canceled", "saved", "reactivated")
SUBSCRIPTION_STATUSES = (
    "incomplete", "incomplete_expired", "trialing", "active", "past_due", "canceled", "unpaid", "paused",
)  # fmt: skip
INTERVALS = ("day", "week", "month", "year")

BUILT_IN: tuple[PropertySpec, ...] = (
    PropertySpec("subscriber.mrr", "MRR", "Subscriber", ValueType.NUMBER, "mrr_cents", scale=100),
    PropertySpec("subscriber.ltv", "LTV", "Subscriber", ValueType.NUMBER, "ltv_cents", scale=100),
    PropertySpec(
        "subscriber.status", "Status", "Subscriber", ValueType.STRING, "subscriber_status", choices=SUBSCRIBER_STATUSES
    ),
    PropertySpec(
        "subscriber.active_coupon_id",
        "Active coupon ID",
        "Subscriber",
        ValueType.STRING,
        "coupon_id",
        derived="active_coupon",
    ),
    PropertySpec("customer.email", "Email", "Customer", ValueType.STRING, "email"),
    PropertySpec(
        "customer.email_domain", "Email domain", "Customer", ValueType.STRING, "email", derived="email_domain"
    ),
    PropertySpec("customer.user_id", "User id", "Customer", ValueType.STRING, "user_id"),
    PropertySpec("customer.name", "Name", "Customer", ValueType.STRING, "name"),
    PropertySpec("customer.first_seen", "First seen", "Customer", ValueType.DATE, "first_seen_at"),
    PropertySpec("customer.last_seen", "Last seen", "Customer", ValueType.DATE, "last_seen_at"),
    PropertySpec("customer.is_test", "Is a test customer", "Customer", ValueType.BOOLEAN, "is_test"),
    PropertySpec("account.name", "Account name", "Account", ValueType.STRING, "account__name"),
    PropertySpec("account.domain", "Account domain", "Account", ValueType.STRING, "account__domain"),
    PropertySpec("account.members", "Members", "Account", ValueType.NUMBER, "", derived="account_members"),
    PropertySpec(
        "account.active_members",
        "Members active in the last 7 days",
        "Account",
        ValueType.NUMBER,
        "",
        derived="account_active_members",
    ),
    PropertySpec(
        "subscription.status", "Status", "Subscription", ValueType.STRING, "status", True, choices=SUBSCRIPTION_STATUSES
    ),
    PropertySpec("subscription.mrr", "MRR", "Subscription", ValueType.NUMBER, "mrr_cents", True, scale=100),
    PropertySpec(
        "subscription.ltv", "LTV (paid invoices)", "Subscription", ValueType.NUMBER, "paid_cents", True, scale=100
    ),
    PropertySpec("subscription.quantity", "Quantity", "Subscription", ValueType.NUMBER, "quantity", True),
    PropertySpec("subscription.started", "Started", "Subscription", ValueType.DATE, "started_at", True),
    PropertySpec(
        "subscription.duration_days",
        "Duration (days)",
        "Subscription",
        ValueType.NUMBER,
        "started_at",
        True,
        derived="age_days",
    ),
    PropertySpec(
        "subscription.is_free_trial",
        "Is a free trial",
        "Subscription",
        ValueType.BOOLEAN,
        "",
        True,
        derived="predicate",
    ),
    PropertySpec(
        "subscription.will_renew", "Will renew", "Subscription", ValueType.BOOLEAN, "", True, derived="predicate"
    ),
    PropertySpec(
        "subscription.is_past_due", "Is past due", "Subscription", ValueType.BOOLEAN, "", True, derived="predicate"
    ),
    PropertySpec("subscription.trial_end", "Trial ends", "Subscription", ValueType.DATE, "trial_end", True),
    PropertySpec(
        "subscription.next_billing_date",
        "Next billing date",
        "Subscription",
        ValueType.DATE,
        "current_period_end",
        True,
    ),
    PropertySpec(
        "subscription.cancel_at_period_end",
        "Cancels at period end",
        "Subscription",
        ValueType.BOOLEAN,
        "cancel_at_period_end",
        True,
    ),
    PropertySpec("subscription.coupon_id", "Coupon id", "Subscription", ValueType.STRING, "coupon_id", True),
    PropertySpec(
        "subscription.discount_percent", "Discount %", "Subscription", ValueType.NUMBER, "discount_percent", True
    ),
    PropertySpec(
        "subscription.discount_amount",
        "Discount (fixed)",
        "Subscription",
        ValueType.NUMBER,
        "discount_amount_cents",
        True,
        scale=100,
    ),
    PropertySpec("plan.id", "Plan id", "Plan", ValueType.STRING, "plan__stripe_price_id", True),
    PropertySpec("plan.name", "Plan name", "Plan", ValueType.STRING, "plan__name", True),
    PropertySpec(
        "plan.interval", "Billing interval", "Plan", ValueType.STRING, "plan__interval", True, choices=INTERVALS
    ),
    PropertySpec("plan.interval_count", "Interval count", "Plan", ValueType.NUMBER, "plan__interval_count", True),
    PropertySpec("product.id", "Product id", "Product", ValueType.STRING, "plan__product__stripe_product_id", True),
    PropertySpec("product.name", "Product name", "Product", ValueType.STRING, "plan__product__name", True),
    PropertySpec("addon.id", "Add-on id", "Add-on", ValueType.STRING, "add_on_items__add_on__stripe_price_id", True),
    PropertySpec("addon.name", "Add-on name", "Add-on", ValueType.STRING, "add_on_items__add_on__name", True),
)

_BUILT_IN_BY_KEY = {spec.key: spec for spec in BUILT_IN}
_registered: dict[str, PropertySpec] = {}


def register_properties(specs: Iterable[PropertySpec]) -> None:
    """Add an app's properties to the catalogue (from its AppConfig.ready()); each carries its `compile` builder
    and, for explain, its `actual` reader. A key is registered once; registering it again replaces it."""
    for spec in specs:
        if spec.key in _BUILT_IN_BY_KEY:
            raise ValueError(f"{spec.key} is a built-in property")
        if spec.compile is None:
            raise ValueError(f"{spec.key}: a registered property needs its compile builder")
        _registered[spec.key] = spec


def _fixed_properties() -> list[PropertySpec]:
    """Built-in and registered properties, each registered one after the last of its group (a new group last)."""
    ordered = list(BUILT_IN)
    for spec in _registered.values():
        groups = [index for index, known in enumerate(ordered) if known.group == spec.group]
        ordered.insert(groups[-1] + 1 if groups else len(ordered), spec)
    return ordered


def custom_property_spec(key: str, value_type: str, label: str = "", scope: str = "customer") -> PropertySpec:
    """The spec of a declared custom property: a customer trait (`trait.<key>`) or an account trait
    (`account.trait.<key>`, the group's traits of the customer's account)."""
    on_account = scope == "account"
    return PropertySpec(
        key=f"account.trait.{key}" if on_account else f"trait.{key}",
        label=label or key,
        group="Account custom properties" if on_account else "Custom properties",
        value_type=ValueType(value_type),
        path="traits",
        is_json=True,
        json_key=key,
        on_account=on_account,
    )


def computed_trait_spec(trait: ComputedTrait) -> PropertySpec:
    """The spec of a computed trait (`computed.<key>`), compared on its typed value column."""
    derived = {"days_since_last": "age_days", "trial_days_remaining": "days_until"}.get(trait.kind, "")
    return PropertySpec(
        key=f"computed.{trait.key}",
        label=trait.name,
        group="Computed traits",
        value_type=trait_value_type(trait.kind),
        path=value_column(trait.kind),
        derived=derived,
        computed_trait_id=trait.pk,
        empty=EMPTY_VALUES.get(trait.kind),
    )


def property_named(key: str) -> PropertySpec | None:
    """Look a property up by its key: built-in, registered by an app, a declared custom property (`trait.<key>`)
    or a computed trait (`computed.<key>`)."""
    if key in _BUILT_IN_BY_KEY:
        return _BUILT_IN_BY_KEY[key]
    if key in _registered:
        return _registered[key]
    if key.startswith("computed."):
        trait = ComputedTrait.objects.filter(key=key.removeprefix("computed.")).first()
        return computed_trait_spec(trait) if trait is not None else None
    for prefix, scope in (("trait.", "customer"), ("account.trait.", "account")):
        if key.startswith(prefix):
            declared = CustomProperty.objects.filter(scope=scope, key=key.removeprefix(prefix)).first()
            if declared is not None:
                return custom_property_spec(declared.key, declared.value_type, declared.label, declared.scope)
    return None


def catalogue() -> list[PropertySpec]:
    """Every property the builder may offer: built-in and registered first, then custom properties and computed
    traits by key."""
    custom = [
        custom_property_spec(p.key, p.value_type, p.label, p.scope)
        for p in CustomProperty.objects.order_by("scope", "key")
    ]
    computed = [computed_trait_spec(t) for t in ComputedTrait.objects.order_by("key")]
    return [*_fixed_properties(), *custom, *computed]
