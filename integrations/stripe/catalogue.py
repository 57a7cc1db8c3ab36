"""The billing catalogue mirrored from Stripe: products, prices (plans and add-ons), coupons and discounts.

Each `*_upsert` takes a Stripe object (from a webhook payload or an API snapshot) and brings its row in line; a
discount is order-safe (an older state never overwrites a newer one, a deleted discount stays deleted).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from integrations.stripe.models import AddOn, Coupon, Discount, Plan, Product, RecurringPrice
from integrations.stripe.payloads import Refetch, expandable_id, payload_time


def product_upsert(obj: Mapping[str, Any]) -> Product:
    """Mirror a Stripe product (the thing sold; plans and add-ons are its prices)."""
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
    """Mirror a price as a plan: the main price of a subscription."""
    plan, _ = Plan.objects.update_or_create(
        stripe_price_id=str(price["id"]), defaults={**_price_fields(price), "product": _product_for(price)}
    )
    return plan


def add_on_upsert(price: Mapping[str, Any]) -> AddOn:
    """Mirror a price as an add-on: a price on a subscription beside its plan."""
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
    """Mirror a coupon, so the discounts naming it can be valued without an API call."""
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
    discount.stripe_customer_id = expandable_id(obj.get("customer")) or discount.stripe_customer_id
    discount.stripe_subscription_id = expandable_id(obj.get("subscription")) or discount.stripe_subscription_id
    discount.start, discount.end = payload_time(obj.get("start")) or discount.start, payload_time(obj.get("end"))
    if removed:
        discount.removed_at = discount.removed_at or as_of
    elif discount.removed_at is not None and as_of > discount.removed_at:
        discount.removed_at = None  # dropped by an older subscription state than this one
    discount.stripe_state_at = as_of
    discount.save()
    return discount
