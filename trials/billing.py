"""Mirroring Stripe: customers, catalogue, subscriptions and charges, with the lifecycle events they imply.

`stripe_event_apply` takes one Stripe event (current API shapes: period fields on subscription items,
coupons under `discounts[].source.coupon`, an invoice's subscription under `parent.subscription_details`)
and brings the models in line with it. State is order-safe: an object is only overwritten by an event (or a
backfilled snapshot) at least as new as the one that wrote it. Lifecycle events (Trial Started, Payment
Failed, Order Completed, ...) go onto the customer's timeline with the Stripe event id in their message id,
so applying an event twice never tells the story twice. Backfill (integrations.stripe_sync) calls the same
`*_upsert` functions with API snapshots.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from audiences.ingestion import IncomingMessage, messages_ingest
from audiences.models import Account, AnonymousId, Customer, Source
from audiences.services import source_create
from config.facts import Fact, FactKind, facts_record
from config.money import to_major
from integrations.stripe.models import (
    AddOn,
    Charge,
    Coupon,
    Discount,
    Invoice,
    Plan,
    Product,
    RecurringPrice,
    StripeCustomer,
    Subscription,
    SubscriptionAddOn,
)
from trials.scores import score_settings
from trials.services import (
    Conversion,
    DiscountTerms,
    billing_settings,
    conversion,
    subscription_discount_terms,
    subscription_mrr_amount,
)

STRIPE_SOURCE_NAME = "Stripe"
SPEND_TIERS = [(0, "none"), (1, "low"), (100_00, "medium"), (1_000_00, "high")]  # lifetime value in cents


# Fetches the current state of a Stripe object ("subscription", id) through the API, or None.
Refetch = Callable[[str, str], Mapping[str, Any] | None]


class CustomerNotLinked(Exception):
    """The event belongs to a Stripe customer not linked to any profile yet: it waits to be replayed."""

    def __init__(self, stripe_customer_id: str) -> None:
        super().__init__(f"Stripe customer {stripe_customer_id} is not linked to a profile")
        self.stripe_customer_id = stripe_customer_id


def _time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _id(value: Any) -> str:
    """An expandable field's id, whether Stripe sent the id or the expanded object."""
    if isinstance(value, Mapping):
        return str(value.get("id", ""))
    return str(value or "")


def stripe_source() -> Source:
    """The built-in source that billing events are recorded under (created on first use; its key is unused)."""
    source = Source.objects.filter(kind=Source.Kind.STRIPE).order_by("pk").first()
    if source is None:
        taken = Source.objects.filter(name=STRIPE_SOURCE_NAME).exists()
        name = f"{STRIPE_SOURCE_NAME} (billing)" if taken else STRIPE_SOURCE_NAME
        source, _ = source_create(name=name, kind=Source.Kind.STRIPE)
    return source


# --- customers -------------------------------------------------------------------------------------------


def _link_candidate(obj: Mapping[str, Any]) -> tuple[Customer | None, str, str]:
    """(profile, method, reason): the profile a Stripe customer belongs to, or None with why not."""
    stripe_id = str(obj["id"])
    by_stripe_id = Customer.objects.filter(stripe_customer_id=stripe_id).first()
    if by_stripe_id is not None:
        return by_stripe_id, StripeCustomer.LinkMethod.STRIPE_ID, ""
    email = str(obj.get("email") or "").strip().lower()
    by_email: Customer | None = None
    if email:
        matches = list(Customer.objects.filter(email=email)[:2])
        if len(matches) > 1:
            return None, "", f"{len(matches)}+ profiles share the email {email}"
        by_email = matches[0] if matches else None
    user_id = str((obj.get("metadata") or {}).get("user_id") or "")
    by_user_id = Customer.objects.filter(user_id=user_id).first() if user_id else None
    if by_email and by_user_id and by_email.pk != by_user_id.pk:
        return None, "", f"email points at profile {by_email.pk}, metadata.user_id at profile {by_user_id.pk}"
    chosen, method = (
        (by_email, StripeCustomer.LinkMethod.EMAIL) if by_email else (by_user_id, StripeCustomer.LinkMethod.USER_ID)
    )
    if chosen is None:
        return None, "", "no profile with this email or metadata.user_id"
    if chosen.stripe_customer_id and chosen.stripe_customer_id != stripe_id:
        return None, "", f"profile {chosen.pk} is already linked to {chosen.stripe_customer_id}"
    return chosen, method, ""


def stripe_customer_link(*, stripe_customer: StripeCustomer, customer: Customer, method: str) -> None:
    """Link a Stripe customer to a profile: the profile keeps the Stripe id and answers to it from now on, and
    joins the Stripe customer's account when it has none."""
    stripe_customer.customer, stripe_customer.link_method, stripe_customer.unlinked_reason = customer, method, ""
    stripe_customer.save(update_fields=["customer", "link_method", "unlinked_reason", "updated_at"])
    Customer.objects.filter(pk=customer.pk).update(stripe_customer_id=stripe_customer.stripe_customer_id)
    if stripe_customer.account_id is not None:
        Customer.objects.filter(pk=customer.pk, account__isnull=True).update(account_id=stripe_customer.account_id)
    customer.stripe_customer_id = stripe_customer.stripe_customer_id
    AnonymousId.objects.bulk_create(
        [AnonymousId(anonymous_id=f"stripe:{stripe_customer.stripe_customer_id}", customer=customer)],
        ignore_conflicts=True,
    )
    if not customer.email and stripe_customer.email:
        Customer.objects.filter(pk=customer.pk).update(email=stripe_customer.email)


def customer_upsert(obj: Mapping[str, Any], *, as_of: datetime) -> StripeCustomer:
    """Mirror a Stripe customer and link it to a profile when the evidence is unambiguous."""
    stripe_customer, _ = StripeCustomer.objects.get_or_create(stripe_customer_id=str(obj["id"]))
    if stripe_customer.stripe_state_at is None or as_of >= stripe_customer.stripe_state_at:
        stripe_customer.email = str(obj.get("email") or "").strip().lower()[:254]
        stripe_customer.name = str(obj.get("name") or "")[:255]
        stripe_customer.metadata = dict(obj.get("metadata") or {})
        stripe_customer.deleted = bool(obj.get("deleted"))
        stripe_customer.stripe_state_at = as_of
        stripe_customer.save()
    if stripe_customer.customer_id is None:
        candidate, method, reason = _link_candidate(obj)
        if candidate is not None:
            stripe_customer_link(stripe_customer=stripe_customer, customer=candidate, method=method)
        elif stripe_customer.unlinked_reason != reason:
            stripe_customer.unlinked_reason = reason
            stripe_customer.save(update_fields=["unlinked_reason", "updated_at"])
    if isinstance(obj.get("discount"), Mapping):  # older API versions: the customer-wide discount inline
        discount_upsert(obj["discount"], as_of=as_of)
    if "email" in obj or "metadata" in obj:
        stripe_customer_map_account(stripe_customer)
    return stripe_customer


def _account_match(stripe_customer: StripeCustomer) -> tuple[Account | None, str]:
    """(account, how) by the configured rule: the metadata key's value as the account's group id (the account
    is created when the product has not grouped anyone under it yet), then the email's domain when exactly one
    account has it (free-mail domains never match)."""
    settings = billing_settings()
    key = settings.account_metadata_key.strip()
    group_id = str((stripe_customer.metadata or {}).get(key) or "").strip()[:255] if key else ""
    if group_id:
        account, created = Account.objects.get_or_create(group_id=group_id, defaults={"name": stripe_customer.name})
        return account, f"metadata.{key} = {group_id}" + (" (account created)" if created else "")
    if settings.account_by_email_domain and "@" in stripe_customer.email:
        domain = stripe_customer.email.rpartition("@")[2].lower()
        if domain in score_settings().free_mail_domains.lower().split():
            return None, f"{domain} is a free-mail domain"
        matches = list(Account.objects.filter(domain__iexact=domain)[:2])
        if len(matches) == 1:
            return matches[0], f"email domain {domain}"
        return None, f"{len(matches) or 'no'}{'+' if len(matches) > 1 else ''} accounts with the domain {domain}"
    return None, "no rule matched" if key or settings.account_by_email_domain else "no rule configured"


def stripe_customer_map_account(stripe_customer: StripeCustomer) -> Account | None:
    """Map a Stripe customer to the account (company) it bills, by the rule in BillingSettings; its linked
    profile joins that account when it belongs to none yet (a group call stays the authority)."""
    account, reason = _account_match(stripe_customer)
    if (stripe_customer.account_id, stripe_customer.account_reason) != (account.pk if account else None, reason):
        stripe_customer.account, stripe_customer.account_reason = account, reason[:255]
        stripe_customer.save(update_fields=["account", "account_reason", "updated_at"])
    if account is not None and stripe_customer.customer_id is not None:
        Customer.objects.filter(pk=stripe_customer.customer_id, account__isnull=True).update(account=account)
    return account


def _linked_customer(stripe_customer_id: str) -> Customer:
    stripe_customer = (
        StripeCustomer.objects.select_related("customer").filter(stripe_customer_id=stripe_customer_id).first()
    )
    if stripe_customer is None:
        stripe_customer = customer_upsert({"id": stripe_customer_id}, as_of=datetime.min.replace(tzinfo=UTC))
    if stripe_customer.customer is None:
        raise CustomerNotLinked(stripe_customer_id)
    return stripe_customer.customer


# --- catalogue -------------------------------------------------------------------------------------------


def product_upsert(obj: Mapping[str, Any]) -> Product:
    product, _ = Product.objects.update_or_create(
        stripe_product_id=str(obj["id"]),
        defaults={
            "name": str(obj.get("name") or obj["id"])[:255],
            "description": str(obj.get("description") or ""),
            "active": bool(obj.get("active", True)),
            "metadata": dict(obj.get("metadata") or {}),
        },
    )
    return product


def _tiers(raw: Any) -> list[dict[str, Any]]:
    """Stripe's tiers as stored: `up_to` (None for the last, "inf" when created), amounts as decimal text."""
    tiers = []
    for tier in raw:
        if not isinstance(tier, Mapping):
            continue
        up_to = tier.get("up_to")
        unit = tier.get("unit_amount_decimal") or tier.get("unit_amount") or 0
        flat = tier.get("flat_amount_decimal") or tier.get("flat_amount") or 0
        tiers.append(
            {
                "up_to": None if up_to is None or up_to == "inf" else int(up_to),
                "unit_amount": str(unit),
                "flat_amount": str(flat),
            }
        )
    return tiers


def _price_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A price's catalogue fields. `tiers` only when the payload carries them (Stripe sends them only when
    expanded), so a webhook never wipes tiers a backfill stored."""
    recurring = obj.get("recurring") or {}
    decimal_text = obj.get("unit_amount_decimal")
    exact = Decimal(str(decimal_text)) if decimal_text not in (None, "") else None
    transform = obj.get("transform_quantity") or {}
    fields: dict[str, Any] = {
        "name": str(obj.get("nickname") or obj.get("lookup_key") or obj["id"])[:255],
        "amount_cents": int(obj.get("unit_amount") or (exact if exact is not None else 0)),
        "amount_decimal": exact if exact is not None and exact != exact.to_integral_value() else None,
        "currency": str(obj.get("currency") or "usd").lower(),
        "interval": str(recurring.get("interval") or "month"),
        "interval_count": int(recurring.get("interval_count") or 1),
        "usage_type": str(recurring.get("usage_type") or "licensed"),
        "billing_scheme": str(obj.get("billing_scheme") or RecurringPrice.BillingScheme.PER_UNIT),
        "tiers_mode": str(obj.get("tiers_mode") or ""),
        "transform_divide_by": int(transform["divide_by"]) if transform.get("divide_by") else None,
        "transform_round": str(transform.get("round") or ""),
        "active": bool(obj.get("active", True)),
    }
    if isinstance(obj.get("tiers"), list):
        fields["tiers"] = _tiers(obj["tiers"])
    return fields


def _product_for(price: Mapping[str, Any]) -> Product:
    product = price.get("product")
    if isinstance(product, Mapping):
        return product_upsert(product)
    existing = Product.objects.filter(stripe_product_id=str(product)).first()
    return existing or Product.objects.create(stripe_product_id=str(product), name=str(product))


def plan_upsert(price: Mapping[str, Any]) -> Plan:
    plan, _ = Plan.objects.update_or_create(
        stripe_price_id=str(price["id"]), defaults={**_price_fields(price), "product": _product_for(price)}
    )
    return plan


def add_on_upsert(price: Mapping[str, Any]) -> AddOn:
    add_on, _ = AddOn.objects.update_or_create(
        stripe_price_id=str(price["id"]), defaults={**_price_fields(price), "product": _product_for(price)}
    )
    return add_on


def price_upsert(price: Mapping[str, Any], *, refetch: Refetch | None = None) -> None:
    """A price event updates whichever catalogue entry uses it (plan or add-on); new prices become plans. A
    tiered price arrives without its tiers (Stripe includes them only when expanded): with `refetch` they are
    read from the API, else the price is valued by what invoices bill for it."""
    if refetch is not None and price.get("billing_scheme") == "tiered" and not isinstance(price.get("tiers"), list):
        price = refetch("price", str(price["id"])) or price
    if AddOn.objects.filter(stripe_price_id=str(price["id"])).exists():
        add_on_upsert(price)
    elif price.get("type", "recurring") == "recurring":
        plan_upsert(price)


def coupon_upsert(obj: Mapping[str, Any]) -> Coupon:
    coupon, _ = Coupon.objects.update_or_create(
        stripe_coupon_id=str(obj["id"]),
        defaults={
            "name": str(obj.get("name") or "")[:255],
            "percent_off": Decimal(str(obj["percent_off"])) if obj.get("percent_off") is not None else None,
            "amount_off_cents": obj.get("amount_off"),
            "currency": str(obj.get("currency") or ""),
            "duration": str(obj.get("duration") or ""),
            "duration_in_months": obj.get("duration_in_months"),
        },
    )
    return coupon


def _coupon_id_of(discount: Mapping[str, Any]) -> str:
    """The coupon behind a discount object — under `source.coupon` (current shape) or `coupon` (older) — kept
    in the mirror when it came expanded."""
    source = discount.get("source") or {}
    coupon = source.get("coupon") if isinstance(source, Mapping) else None
    if coupon is None:
        coupon = discount.get("coupon")
    if isinstance(coupon, Mapping):
        return coupon_upsert(coupon).stripe_coupon_id
    return str(coupon or "")


def discount_upsert(obj: Mapping[str, Any], *, as_of: datetime, removed: bool = False) -> Discount:
    """Mirror a discount (from `customer.discount.*`, an expanded subscription or an older `discount` field);
    an older event never overwrites a newer one, and a deleted discount stays deleted."""
    discount, _ = Discount.objects.get_or_create(stripe_discount_id=str(obj["id"]))
    if discount.stripe_state_at is not None and as_of < discount.stripe_state_at:
        return discount
    coupon_id = _coupon_id_of(obj)
    discount.coupon_id = coupon_id or discount.coupon_id
    discount.stripe_customer_id = _id(obj.get("customer")) or discount.stripe_customer_id
    discount.stripe_subscription_id = _id(obj.get("subscription")) or discount.stripe_subscription_id
    discount.start, discount.end = _time(obj.get("start")) or discount.start, _time(obj.get("end"))
    if removed:
        discount.removed_at = discount.removed_at or as_of
    elif discount.removed_at is not None and as_of > discount.removed_at:
        discount.removed_at = None  # dropped by an older subscription state than this one
    discount.stripe_state_at = as_of
    discount.save()
    return discount


def _discount_ids(obj: Mapping[str, Any], as_of: datetime) -> list[str]:
    """A subscription's discounts in Stripe's order, as ids: `discounts` (ids, or objects when expanded, which
    are mirrored) or, in older API versions, the single `discount` object."""
    listed = obj.get("discounts")
    if listed is None and isinstance(obj.get("discount"), Mapping):
        listed = [obj["discount"]]
    ids = []
    for entry in listed or []:
        if isinstance(entry, Mapping):
            ids.append(discount_upsert(entry, as_of=as_of).stripe_discount_id)
        elif entry:
            ids.append(str(entry))
    return ids


# --- subscriptions ---------------------------------------------------------------------------------------


@dataclass
class SubscriptionChange:
    """What an upsert changed, for the lifecycle events."""

    subscription: Subscription
    applied: bool = True
    previous_plan: Plan | None = None
    previous_mrr_amount: int = 0  # in the subscription's own currency (smallest unit)


def _unvalued_discounts(discount_ids: list[str]) -> bool:
    """Whether a discount id's coupon is unknown: the discount never arrived, or its coupon did not."""
    if not discount_ids:
        return False
    coupons = dict(
        Discount.objects.filter(stripe_discount_id__in=discount_ids).values_list("stripe_discount_id", "coupon_id")
    )
    wanted = {coupons.get(i, "") for i in discount_ids}
    known = set(Coupon.objects.filter(stripe_coupon_id__in=wanted - {""}).values_list("stripe_coupon_id", flat=True))
    return bool(wanted - known)


# The lifecycle fields whose values order two states of a subscription from the same second.
ORDERING_FIELDS = (
    "status", "items", "discounts", "latest_invoice", "cancel_at_period_end", "canceled_at", "ended_at",
    "pause_collection", "trial_end", "current_period_end",
)  # fmt: skip
STATUS_RANK = {
    "incomplete": 0, "trialing": 1, "active": 2, "past_due": 2, "unpaid": 2, "paused": 2, "canceled": 3,
    "incomplete_expired": 3,
}  # fmt: skip


def _ordering_value(key: str, value: Any) -> Any:
    """A field's value as ordering compares it (ids for expandable fields, items as price and quantity)."""
    if key == "items":
        data = (value or {}).get("data") or [] if isinstance(value, Mapping) else value or []
        return sorted(
            [_id(item.get("price")), int(item.get("quantity") or 0), int(item.get("current_period_end") or 0)]
            for item in data
            if isinstance(item, Mapping)
        )
    if key == "discounts":
        return [_id(d) for d in value or []]
    if key == "latest_invoice":
        return _id(value)
    if key == "pause_collection":
        return dict(value) if isinstance(value, Mapping) else None
    return value


def _ordering_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _ordering_value(key, obj[key]) for key in ORDERING_FIELDS if key in obj}


def _rank(fields: Mapping[str, Any]) -> tuple[int, int, int]:
    """How far along its life a state is: status, then the latest period end, then whether it ended."""
    periods = [row[2] for row in fields.get("items") or []] + [int(fields.get("current_period_end") or 0)]
    return STATUS_RANK.get(str(fields.get("status")), 0), max(periods), int(bool(fields.get("ended_at")))


def _same_second_order(existing: Subscription, obj: Mapping[str, Any], previous: Mapping[str, Any]) -> str:
    """Whether a payload from the same second as the stored state is "later", "earlier" or "unknown", read
    from the payloads alone: an event whose `previous_attributes` are the stored state follows it; one whose
    state is what the stored event's `previous_attributes` left behind precedes it; otherwise the state further
    along its life (status, period, end) is the later one."""
    stored, stored_previous = existing.stripe_state.get("fields", {}), existing.stripe_state.get("previous", {})
    incoming, before = _ordering_fields(obj), _ordering_fields(previous)
    if incoming == stored:
        return "later"  # the same state again: applying it changes nothing
    if before and all(stored.get(k) == v for k, v in before.items()):
        return "later"
    if stored_previous and all(incoming.get(k) == v for k, v in stored_previous.items()):
        return "earlier"
    new_rank, old_rank = _rank(incoming), _rank(stored)
    return "later" if new_rank > old_rank else "earlier" if new_rank < old_rank else "unknown"


def subscription_upsert(
    obj: Mapping[str, Any],
    *,
    as_of: datetime,
    refetch: Refetch | None = None,
    previous: Mapping[str, Any] | None = None,
) -> SubscriptionChange:
    """Mirror a Stripe subscription (items → plan and add-ons, discounts, trial, pause, cancellation, periods).

    Reads the current API shape (periods on items, `discounts`) and the older one (periods on the subscription,
    a single `discount`). An older event never overwrites newer state; one from the same second is ordered
    from the payloads (`previous`: the event's previous_attributes). With `refetch` (an API key is configured),
    a payload that may still mislead — a discount whose coupon is unknown, or a same-second event the payloads
    cannot order — is replaced by the current object.
    """
    customer = _linked_customer(_id(obj.get("customer")))
    previous = previous or {}
    existing = Subscription.objects.select_related("plan").filter(stripe_subscription_id=str(obj["id"])).first()
    change = SubscriptionChange(subscription=existing or Subscription())
    if existing is not None:
        change.previous_plan, change.previous_mrr_amount = existing.plan, existing.mrr_amount
    order = "later"
    if existing is not None and existing.stripe_state_at is not None:
        if as_of < existing.stripe_state_at:
            order = "earlier"
        elif as_of == existing.stripe_state_at:
            order = _same_second_order(existing, obj, previous)
    unvalued = _unvalued_discounts([_id(d) for d in obj.get("discounts") or [] if not isinstance(d, Mapping)])
    if refetch is not None and order != "earlier" and (order == "unknown" or unvalued):
        fresh = refetch("subscription", str(obj["id"]))
        if fresh is not None:
            obj, as_of, previous, order = fresh, max(as_of, timezone.now()), {}, "later"
    if order == "earlier":
        change.applied = False  # an older state arrived late: the newer one stays
        return change
    items = list((obj.get("items") or {}).get("data") or [])
    if not items:
        raise ValueError(f"subscription {obj['id']} has no items")
    main = items[0]
    subscription = change.subscription
    subscription.stripe_subscription_id = str(obj["id"])
    subscription.customer = customer
    subscription.plan = plan_upsert(main["price"])
    subscription.currency = str(obj.get("currency") or subscription.plan.currency).lower()
    subscription.status = str(obj["status"])
    subscription.quantity = _quantity(main)
    subscription.started_at = _time(obj.get("start_date") or obj.get("created")) or as_of
    subscription.trial_start, subscription.trial_end = _time(obj.get("trial_start")), _time(obj.get("trial_end"))
    subscription.current_period_start = _time(main.get("current_period_start") or obj.get("current_period_start"))
    subscription.current_period_end = _time(main.get("current_period_end") or obj.get("current_period_end"))
    subscription.cancel_at_period_end = bool(obj.get("cancel_at_period_end"))
    subscription.canceled_at, subscription.ended_at = _time(obj.get("canceled_at")), _time(obj.get("ended_at"))
    pause = obj.get("pause_collection") or {}
    subscription.pause_resumes_at = _time(pause.get("resumes_at")) if pause else None
    if pause and not pause.get("resumes_at"):
        subscription.pause_resumes_at = datetime.max.replace(tzinfo=UTC)  # paused with no end date
    subscription.cancellation_details = {k: v for k, v in (obj.get("cancellation_details") or {}).items() if v}
    subscription.discount_ids = _discount_ids(obj, as_of)
    subscription.metadata = dict(obj.get("metadata") or {})
    subscription.stripe_state_at = as_of
    subscription.stripe_state = {"fields": _ordering_fields(obj), "previous": _ordering_fields(previous)}
    subscription.save()
    # A discount this state no longer lists has ended — unless something newer said otherwise; one it lists and
    # an older state had dropped is running again.
    Discount.objects.filter(stripe_subscription_id=subscription.stripe_subscription_id, removed_at=None).filter(
        Q(stripe_state_at__isnull=True) | Q(stripe_state_at__lte=as_of)
    ).exclude(stripe_discount_id__in=subscription.discount_ids).update(removed_at=as_of)
    Discount.objects.filter(stripe_discount_id__in=subscription.discount_ids, removed_at__lt=as_of).update(
        removed_at=None
    )
    wanted = {}
    for item in items[1:]:
        add_on = add_on_upsert(item["price"])
        wanted[add_on.pk] = (add_on, _quantity(item), str(item.get("id") or ""))
    SubscriptionAddOn.objects.filter(subscription=subscription).exclude(add_on_id__in=list(wanted)).delete()
    for add_on, quantity, item_id in wanted.values():
        SubscriptionAddOn.objects.update_or_create(
            subscription=subscription, add_on=add_on, defaults={"quantity": quantity, "stripe_item_id": item_id or None}
        )
    subscriptions_revalue([subscription])
    # Invoices that arrived before their subscription count for it now.
    if Invoice.objects.filter(stripe_subscription_id=subscription.stripe_subscription_id, subscription=None).update(
        subscription=subscription
    ):
        subscription_paid_refresh([subscription.pk])
        subscriptions_revalue([subscription])
    return change


def _quantity(item: Mapping[str, Any]) -> int:
    """An item's quantity (seats); 0 is a quantity, only a missing one (metered items) counts as 1."""
    quantity = item.get("quantity")
    return int(quantity) if quantity is not None else 1


def subscriptions_revalue(subscriptions: list[Subscription], convert: Conversion | None = None) -> None:
    """Value each subscription's discounts from the mirrored coupons and store its MRR, in its own currency and
    in the workspace's. The first valued discount is what segments see as the subscription's coupon."""
    convert = convert or conversion()
    for subscription in subscriptions:
        terms = subscription_discount_terms(subscription)
        first: DiscountTerms | None = terms[0] if terms else None
        subscription.coupon_id = first.coupon_id if first else ""
        subscription.discount_percent = first.percent_off if first else None
        subscription.discount_amount_cents = first.amount_off if first else None
        subscription.discount_duration = first.duration if first else ""
        subscription.mrr_amount = subscription_mrr_amount(subscription, terms)
        subscription.mrr_cents = convert.to_cents(
            subscription.mrr_amount, subscription.currency or subscription.plan.currency
        )
        subscription.save(
            update_fields=[
                "coupon_id",
                "discount_percent",
                "discount_amount_cents",
                "discount_duration",
                "mrr_amount",
                "mrr_cents",
            ]
        )


def _revalue_for_discounts(discounts: list[Discount]) -> set[int]:
    """A discount or coupon arrived: value again the subscriptions it applies to (its own subscription, or
    every subscription of its customer for a customer-wide one). Returns the customers touched."""
    subscription_ids = {d.stripe_subscription_id for d in discounts if d.stripe_subscription_id}
    customer_wide = {d.stripe_customer_id for d in discounts if not d.stripe_subscription_id and d.stripe_customer_id}
    affected = list(
        Subscription.objects.select_related("plan", "customer").filter(
            Q(stripe_subscription_id__in=subscription_ids) | Q(customer__stripe_customer_id__in=customer_wide)
        )
    )
    subscriptions_revalue(affected)
    return {s.customer_id for s in affected}


# --- invoices --------------------------------------------------------------------------------------------


def subscription_paid_refresh(subscription_ids: list[int]) -> None:
    """Recompute the subscriptions' lifetime value from their paid invoices (one set-based UPDATE)."""
    paid = (
        Invoice.objects.filter(subscription=OuterRef("pk"), status="paid")
        .order_by()
        .values("subscription")
        .annotate(total=Sum("amount_paid_cents"))
        .values("total")
    )
    Subscription.objects.filter(pk__in=subscription_ids).update(paid_cents=Coalesce(Subquery(paid), Value(0)))


def invoice_upsert(obj: Mapping[str, Any]) -> Invoice:
    """Mirror an invoice and its subscription's lifetime value. What was paid only grows and "paid" is final, so a
    late, older snapshot cannot undo a payment."""
    customer = _linked_customer(_id(obj.get("customer")))
    stripe_subscription_id = _invoice_subscription_id(obj)
    existing = Invoice.objects.filter(stripe_invoice_id=str(obj["id"])).first()
    amount = int(obj.get("amount_paid") or 0)
    status = str(obj.get("status") or "")
    if existing is not None:
        amount = max(amount, existing.amount_paid_cents)
        status = "paid" if existing.status == "paid" else status
    subscription = (
        Subscription.objects.select_related("plan", "customer")
        .filter(stripe_subscription_id=stripe_subscription_id)
        .first()
    )
    lines = _line_amounts(obj)
    invoice, _ = Invoice.objects.update_or_create(
        stripe_invoice_id=str(obj["id"]),
        defaults={
            "customer": customer,
            "stripe_subscription_id": stripe_subscription_id,
            "subscription": subscription,
            "status": status,
            "amount_paid_cents": amount,
            "currency": str(obj.get("currency") or "usd").lower(),
            "created_at_stripe": _time(obj.get("created")) or timezone.now(),
            **({"line_amounts": lines} if lines or existing is None else {}),
        },
    )
    if subscription is not None:
        subscription_paid_refresh([subscription.pk])
        subscriptions_revalue([subscription])  # a metered (or untiered) price is valued by its latest invoice
    return invoice


def _line_price_id(line: Mapping[str, Any]) -> str:
    """The price an invoice line bills: `pricing.price_details.price` (current shape) or `price` (older)."""
    pricing = line.get("pricing") or {}
    details = pricing.get("price_details") or {} if isinstance(pricing, Mapping) else {}
    return _id(details.get("price")) or _id(line.get("price")) or _id(line.get("plan"))


def _line_is_proration(line: Mapping[str, Any]) -> bool:
    parent = line.get("parent") or {}
    details = parent.get("subscription_item_details") or {} if isinstance(parent, Mapping) else {}
    return bool(details.get("proration") or line.get("proration"))


def _line_amounts(invoice: Mapping[str, Any]) -> dict[str, int]:
    """What the invoice billed per price, prorations left out (a change mid-period is not a run-rate)."""
    amounts: dict[str, int] = {}
    for line in (invoice.get("lines") or {}).get("data") or []:
        if not isinstance(line, Mapping) or _line_is_proration(line):
            continue
        price_id = _line_price_id(line)
        if price_id:
            amounts[price_id] = amounts.get(price_id, 0) + int(line.get("amount") or 0)
    return amounts


# --- charges ---------------------------------------------------------------------------------------------


def charge_upsert(obj: Mapping[str, Any]) -> Charge:
    """Mirror a charge. Refunds and disputes only ever grow, so a late, older snapshot cannot shrink them."""
    customer = _linked_customer(_id(obj.get("customer")))
    existing = Charge.objects.filter(stripe_charge_id=str(obj["id"])).first()
    refunded = int(obj.get("amount_refunded") or 0)
    disputed = bool(obj.get("disputed"))
    if existing is not None:
        refunded, disputed = max(refunded, existing.amount_refunded_cents), disputed or existing.disputed
    charge, _ = Charge.objects.update_or_create(
        stripe_charge_id=str(obj["id"]),
        defaults={
            "customer": customer,
            "amount_cents": int(obj.get("amount") or 0),
            "amount_refunded_cents": refunded,
            "currency": str(obj.get("currency") or "usd"),
            "status": str(obj.get("status") or ""),
            "paid": bool(obj.get("paid")),
            "disputed": disputed,
            "failure_message": str(obj.get("failure_message") or "")[:500],
            "charged_at": _time(obj.get("created")) or timezone.now(),
        },
    )
    return charge


# --- traits ----------------------------------------------------------------------------------------------


def _spend_tier(ltv_cents: int) -> str:
    tier = SPEND_TIERS[0][1]
    for threshold, name in SPEND_TIERS:
        if ltv_cents >= threshold:
            tier = name
    return tier


@transaction.atomic
def customer_billing_refresh(customer: Customer) -> dict[str, Any]:
    """Recompute a customer's revenue columns and billing traits from the mirrored rows; returns the traits."""
    subscriptions = list(customer.subscriptions.select_related("plan").order_by("-started_at"))
    live = [
        s
        for s in subscriptions
        if s.status not in (Subscription.Status.CANCELED, Subscription.Status.INCOMPLETE_EXPIRED)
    ]
    current = live[0] if live else (subscriptions[0] if subscriptions else None)
    paid = Charge.objects.filter(customer=customer, paid=True, status="succeeded")
    totals = paid.aggregate(charged=Sum("amount_cents"), refunded=Sum("amount_refunded_cents"))
    ltv_cents = (totals["charged"] or 0) - (totals["refunded"] or 0)
    last_payment = paid.order_by("-charged_at").values_list("charged_at", flat=True).first()
    unconvertible = any(s.mrr_amount > 0 and s.mrr_cents is None for s in subscriptions)
    mrr_cents = None if unconvertible else sum(s.mrr_cents or 0 for s in subscriptions)
    currencies = sorted({s.currency or s.plan.currency for s in subscriptions if s.mrr_amount > 0})
    delinquent = any(s.status in (Subscription.Status.PAST_DUE, Subscription.Status.UNPAID) for s in subscriptions)
    next_billing = None
    billable = (Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE, Subscription.Status.TRIALING)
    if current and current.status in billable and not current.cancel_at_period_end:
        trialing = current.status == Subscription.Status.TRIALING
        next_billing = current.trial_end if trialing else current.current_period_end
    traits: dict[str, Any] = {
        "mrr": round(mrr_cents / 100, 2) if mrr_cents is not None else None,
        "mrr_currency": billing_settings().currency.lower(),
        "billing_currencies": currencies,
        "ltv": round(ltv_cents / 100, 2),
        "plan": current.plan.name if current else None,
        "billing_interval": current.plan.interval if current else None,
        "subscription_status": current.status if current else None,
        "trial_end_date": current.trial_end.date().isoformat() if current and current.trial_end else None,
        "next_billing_date": next_billing.date().isoformat() if next_billing else None,
        "payment_delinquent": delinquent,
        "spend_tier": _spend_tier(ltv_cents),
        "last_payment_date": last_payment.date().isoformat() if last_payment else None,
    }
    status = customer.subscriber_status
    if any(s.status in (Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE) for s in subscriptions):
        if status not in (Customer.SubscriberStatus.SAVED, Customer.SubscriberStatus.REACTIVATED):
            status = (
                Customer.SubscriberStatus.REACTIVATED
                if status == Customer.SubscriberStatus.CANCELED
                else Customer.SubscriberStatus.ACTIVE
            )
    elif subscriptions and all(s.status == Subscription.Status.CANCELED for s in subscriptions) and status:
        status = Customer.SubscriberStatus.CANCELED
    # Merge into the stored traits under a row lock, so traits another task wrote meanwhile are kept.
    stored = Customer.objects.select_for_update().only("traits").get(pk=customer.pk)
    customer.traits = {**stored.traits, **traits}
    customer.mrr_cents = max(mrr_cents, 0) if mrr_cents is not None else None
    customer.ltv_cents, customer.subscriber_status = ltv_cents, status
    customer.save(update_fields=["traits", "mrr_cents", "ltv_cents", "subscriber_status", "updated_at"])
    return traits


# --- lifecycle events ------------------------------------------------------------------------------------


@dataclass
class _Story:
    """The lifecycle events one Stripe event tells, recorded together at the end."""

    event: Mapping[str, Any]
    customer: Customer | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def tell(self, name: str, **properties: Any) -> None:
        self.calls.append((name, {k: v for k, v in properties.items() if v is not None}))

    def record(self) -> None:
        if self.customer is None or not self.calls:
            return
        created = _time(self.event["created"]) or timezone.now()
        now = timezone.now()
        messages = [
            IncomingMessage(
                type="track",
                message_id=f"{self.event['id']}:{index}"[:100],
                user_id=self.customer.user_id,
                anonymous_id=f"stripe:{self.customer.stripe_customer_id}" if self.customer.stripe_customer_id else None,
                name=name,
                properties={**properties, "stripe_event_id": self.event["id"]},
                context={"integration": {"name": "stripe"}},
                timestamp=created,
                received_at=now,
            )
            for index, (name, properties) in enumerate(self.calls)
        ]
        messages_ingest(source=stripe_source(), messages=messages)
        facts_record(
            [
                Fact(
                    kind=FactKind.BILLING_EVENT,
                    customer_id=self.customer.pk,
                    idempotency_key=f"billing:{message.message_id}"[:90],
                    occurred_at=created,
                    data={"event": message.name, "properties": message.properties},
                )
                for message in messages
            ]
        )


def _units(amount_minor: int, currency: str) -> float:
    """A Stripe amount as currency units, as events carry it: ¥10,000 stays 10000, 1000 US cents are 10.0."""
    return float(to_major(amount_minor, currency))


def _major(amount_minor: int, subscription: Subscription) -> float:
    return _units(amount_minor, subscription.currency or subscription.plan.currency)


def _plan_label(plan: Plan | None) -> str | None:
    return f"{plan.product.name} · {plan.name}" if plan is not None else None


def _campaigns(customer: Customer) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """First- and last-touch campaign of the customer's earlier events (their `context.campaign`)."""
    touched = customer.events.filter(context__has_key="campaign").order_by("timestamp", "id")
    first = touched.values_list("context", flat=True).first()
    last = touched.order_by("-timestamp", "-id").values_list("context", flat=True).first()
    return (first or {}).get("campaign"), (last or {}).get("campaign")


def _subscription_story(
    story: _Story, event_type: str, change: SubscriptionChange, previous: Mapping[str, Any]
) -> None:
    subscription = change.subscription
    plan = _plan_label(subscription.plan)
    if event_type == "customer.subscription.created":
        if subscription.status == Subscription.Status.TRIALING:
            days = (
                (subscription.trial_end - subscription.trial_start).days
                if subscription.trial_end and subscription.trial_start
                else None
            )
            story.tell(
                "Trial Started",
                subscription_id=subscription.stripe_subscription_id,
                plan=plan,
                trial_end=subscription.trial_end.isoformat() if subscription.trial_end else None,
                trial_days=days,
            )
        else:
            story.tell(
                "Subscription Started",
                subscription_id=subscription.stripe_subscription_id,
                plan=plan,
                mrr=_major(subscription.mrr_amount, subscription),
                currency=subscription.currency,
                status=subscription.status,
            )
    elif event_type == "customer.subscription.trial_will_end":
        story.tell(
            "Trial Ending",
            subscription_id=subscription.stripe_subscription_id,
            plan=plan,
            trial_end=subscription.trial_end.isoformat() if subscription.trial_end else None,
        )
    elif event_type == "customer.subscription.deleted":
        details = subscription.cancellation_details
        story.tell(
            "Subscription Canceled",
            subscription_id=subscription.stripe_subscription_id,
            plan=plan,
            reason=details.get("reason"),
            feedback=details.get("feedback"),
            comment=details.get("comment"),
            mrr_lost=_major(change.previous_mrr_amount, subscription),
            currency=subscription.currency,
        )
    elif event_type in ("customer.subscription.paused", "customer.subscription.resumed"):
        story.tell(
            "Subscription Paused" if event_type.endswith("paused") else "Subscription Resumed",
            subscription_id=subscription.stripe_subscription_id,
            plan=plan,
        )
    elif event_type == "customer.subscription.updated":
        items_changed = "items" in previous or "plan" in previous or "quantity" in previous
        old_plan = change.previous_plan
        if (
            items_changed
            and old_plan is not None
            and (old_plan.pk != subscription.plan.pk or change.previous_mrr_amount != subscription.mrr_amount)
        ):
            delta = subscription.mrr_amount - change.previous_mrr_amount
            story.tell(
                "Subscription Changed",
                subscription_id=subscription.stripe_subscription_id,
                from_plan=_plan_label(old_plan),
                to_plan=plan,
                mrr_delta=_major(delta, subscription),
                currency=subscription.currency,
                direction="upgrade" if delta > 0 else "downgrade" if delta < 0 else "lateral",
            )
        if "pause_collection" in previous:
            paused_now = subscription.pause_resumes_at is not None
            if paused_now and not previous.get("pause_collection"):
                story.tell("Subscription Paused", subscription_id=subscription.stripe_subscription_id, plan=plan)
            elif not paused_now and previous.get("pause_collection"):
                story.tell("Subscription Resumed", subscription_id=subscription.stripe_subscription_id, plan=plan)


def _invoice_subscription_id(invoice: Mapping[str, Any]) -> str:
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    return _id(details.get("subscription")) or _id(invoice.get("subscription"))


def _invoice_story(story: _Story, event_type: str, invoice: Mapping[str, Any], customer: Customer) -> None:
    amount = int(invoice.get("amount_paid") or invoice.get("amount_due") or 0)
    currency = str(invoice.get("currency") or "usd")
    subscription_id = _invoice_subscription_id(invoice)
    if event_type == "invoice.payment_failed":
        error = invoice.get("last_finalization_error") or {}
        story.tell(
            "Payment Failed",
            invoice_id=invoice["id"],
            subscription_id=subscription_id or None,
            amount=_units(int(invoice.get("amount_due") or 0), currency),
            currency=currency,
            attempt_count=invoice.get("attempt_count"),
            reason=error.get("message") or error.get("code") or customer.traits.get("last_payment_failure"),
            next_attempt=_iso(_time(invoice.get("next_payment_attempt"))),
        )
        return
    if amount <= 0:
        return
    earlier_failure = customer.events.filter(name="Payment Failed", properties__invoice_id=invoice["id"]).exists()
    if earlier_failure:
        story.tell(
            "Payment Recovered",
            invoice_id=invoice["id"],
            subscription_id=subscription_id or None,
            amount=_units(amount, currency),
            currency=currency,
        )
    subscription = (
        Subscription.objects.select_related("plan__product").filter(stripe_subscription_id=subscription_id).first()
    )
    if subscription is not None and subscription.trial_end is not None:
        converted_before = customer.events.filter(
            name="Trial Converted", properties__subscription_id=subscription_id
        ).exists()
        if not converted_before:
            story.tell(
                "Trial Converted",
                subscription_id=subscription_id,
                plan=_plan_label(subscription.plan),
                amount=_units(amount, currency),
                currency=currency,
            )


def _charge_story(story: _Story, event_type: str, charge: Mapping[str, Any], customer: Customer) -> None:
    currency = str(charge.get("currency") or "usd")
    if event_type == "charge.succeeded":
        first, last = _campaigns(customer)
        story.tell(
            "Order Completed",
            order_id=charge["id"],
            total=_units(int(charge.get("amount") or 0), currency),
            revenue=_units(int(charge.get("amount") or 0), currency),
            currency=currency,
            first_touch_campaign=first,
            last_touch_campaign=last,
        )
    elif event_type == "charge.refunded":
        story.tell(
            "Refund Issued",
            charge_id=charge["id"],
            amount=_units(int(charge.get("amount_refunded") or 0), currency),
            currency=currency,
        )
    elif event_type == "charge.failed":
        customer.traits["last_payment_failure"] = charge.get("failure_message") or charge.get("failure_code")
        Customer.objects.filter(pk=customer.pk).update(traits=customer.traits)


HANDLED_TYPES = {
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "product.created",
    "product.updated",
    "price.created",
    "price.updated",
    "coupon.created",
    "coupon.updated",
    "customer.discount.created",
    "customer.discount.updated",
    "customer.discount.deleted",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.trial_will_end",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "charge.succeeded",
    "charge.failed",
    "charge.refunded",
    "charge.dispute.created",
}


def _refresh_customers(customer_ids: set[int]) -> None:
    for customer in Customer.objects.filter(pk__in=customer_ids):
        customer_billing_refresh(customer)


def stripe_customer_id_of(event: Mapping[str, Any]) -> str:
    """The Stripe customer an event concerns ('' for catalogue events)."""
    obj = event["data"]["object"]
    if obj.get("object") == "customer":
        return str(obj.get("id", ""))
    return _id(obj.get("customer"))


@transaction.atomic
def stripe_event_apply(event: Mapping[str, Any], *, refetch: Refetch | None = None) -> str:
    """Apply one Stripe event; returns what happened ("applied", "stale", "ignored").

    Raises CustomerNotLinked when the event needs a profile that is not linked yet. `refetch`, when given,
    is used to read an object's current state where the payload alone may mislead.
    """
    event_type = str(event["type"])
    obj = event["data"]["object"]
    previous = event["data"].get("previous_attributes") or {}
    as_of = _time(event["created"]) or timezone.now()
    story = _Story(event=event)
    outcome = "applied"
    if event_type.startswith("customer.discount."):
        discount = discount_upsert(obj, as_of=as_of, removed=event_type == "customer.discount.deleted")
        _refresh_customers(_revalue_for_discounts([discount]))
        return outcome
    if event_type.startswith("customer.") and not event_type.startswith("customer.subscription."):
        customer_upsert(obj, as_of=as_of)
        return outcome
    if event_type.startswith("product."):
        product_upsert(obj)
        return outcome
    if event_type.startswith("price."):
        price_upsert(obj, refetch=refetch)
        return outcome
    if event_type.startswith("coupon."):
        coupon = coupon_upsert(obj)
        _refresh_customers(_revalue_for_discounts(list(Discount.objects.filter(coupon_id=coupon.stripe_coupon_id))))
        return outcome
    if event_type.startswith("customer.subscription."):
        change = subscription_upsert(obj, as_of=as_of, refetch=refetch, previous=previous)
        story.customer = change.subscription.customer
        if not change.applied:
            outcome = "stale"
        _subscription_story(story, event_type, change, previous)
    elif event_type.startswith("invoice."):
        story.customer = _linked_customer(_id(obj.get("customer")))
        invoice_upsert(obj)
        _invoice_story(story, event_type, obj, story.customer)
    elif event_type == "charge.dispute.created":
        charge = Charge.objects.select_related("customer").filter(stripe_charge_id=_id(obj.get("charge"))).first()
        if charge is None:
            return "ignored"
        Charge.objects.filter(pk=charge.pk).update(disputed=True)
        story.customer = charge.customer
        story.tell(
            "Dispute Opened",
            charge_id=charge.stripe_charge_id,
            amount=_units(int(obj.get("amount") or 0), str(obj.get("currency") or charge.currency)),
            currency=str(obj.get("currency") or charge.currency),
            reason=obj.get("reason"),
        )
    elif event_type.startswith("charge."):
        charge_upsert(obj)
        story.customer = _linked_customer(_id(obj.get("customer")))
        _charge_story(story, event_type, obj, story.customer)
    else:
        return "ignored"
    story.record()
    if story.customer is not None:
        customer_billing_refresh(story.customer)
    return outcome
