"""The integrations app's models, as Django finds them (`<app>.models`): a face over the packages that define
them — the Stripe mirror (integrations.stripe.models, its webhook log in integrations.stripe.event_models), the
tracking intake (integrations.tracking.models) and the outbound destinations (integrations.destinations.models).
Code imports from the package modules, never from here: this face reaches every layer of the app, so importing it
from a lower layer would break the contract."""

from integrations.destinations.models import Destination, DestinationDelivery
from integrations.stripe.event_models import StripeEvent, StripeSyncCursor, StripeWebhookDelivery
from integrations.stripe.models import (
    AddOn,
    BillingSettings,
    Charge,
    Coupon,
    CurrencyRate,
    Discount,
    Invoice,
    Plan,
    Product,
    StripeCustomer,
    Subscription,
    SubscriptionAddOn,
)
from integrations.tracking.models import (
    ImportJob,
    IngestionError,
    SourceTrackingPlan,
    TrackingPlan,
    TrackingPlanEvent,
    TrackingPlanViolation,
)

__all__ = [
    "AddOn",
    "BillingSettings",
    "Charge",
    "Coupon",
    "CurrencyRate",
    "Destination",
    "DestinationDelivery",
    "Discount",
    "ImportJob",
    "IngestionError",
    "Invoice",
    "Plan",
    "Product",
    "SourceTrackingPlan",
    "StripeCustomer",
    "StripeEvent",
    "StripeSyncCursor",
    "StripeWebhookDelivery",
    "Subscription",
    "SubscriptionAddOn",
    "TrackingPlan",
    "TrackingPlanEvent",
    "TrackingPlanViolation",
]
