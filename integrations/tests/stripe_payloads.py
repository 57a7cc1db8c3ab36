"""Builders of Stripe objects and webhook events, shaped like the API version the installed library pins.

Why: tests of the webhook handlers, the backfill and the fake API (`fake_stripe.py`) need payloads that look
like what Stripe actually sends for `API_VERSION`, not the shapes of older versions that are still all over the
web. The shapes that changed and that code must not rely on any more:

- a subscription's `current_period_start/end` live on each subscription item (`items.data[]`), not on the
  subscription; a subscription has `discounts` (a list of ids, or of discount objects when expanded), no
  singular `discount`;
- a discount's coupon is under `source: {"type": "coupon", "coupon": <id or coupon>}`;
- an invoice's subscription is under `parent.subscription_details.subscription`; an invoice has no top-level
  `subscription`, `charge`, `payment_intent` or `paid`; its lines carry `pricing.price_details` and
  `parent.subscription_item_details` instead of `price`/`plan`/`subscription_item`.

Every builder returns a fresh plain dict (what the JSON of the API decodes to). Ids default to deterministic
values from a per-prefix counter (`cus_test0000000001`, ...); call `reset_ids()` in a test or fixture for ids
that do not depend on test order, or pass explicit ids. Timestamps default to "now" so that code comparing them
with the clock (trial ends, signature tolerance) sees realistic values; pass explicit ones when they matter.

`sign()` / `sign_multi()` / `signed()` produce real `Stripe-Signature` headers that
`stripe.WebhookSignature.verify_header` accepts.
"""

from __future__ import annotations

import calendar
import copy
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

API_VERSION = "2026-10-28.endive"
"""The API version these shapes follow; equals `stripe.api_version` of the pinned library (a test checks)."""

DAY = 86_400
DEFAULT_TRIAL_DAYS = 14

StripeDict = dict[str, Any]

_counters: dict[str, itertools.count[int]] = {}


def reset_ids() -> None:
    """Restart every id counter, so that default ids are the same whatever ran before."""
    _counters.clear()


def next_id(prefix: str) -> str:
    """The next deterministic id for `prefix` (`cus` -> `cus_test0000000001`): sortable and unique per run."""
    counter = _counters.setdefault(prefix, itertools.count(1))
    return f"{prefix}_test{next(counter):010d}"


def now() -> int:
    """The current Unix time, as Stripe timestamps are."""
    return int(time.time())


def add_interval(timestamp: int, interval: str, count: int = 1) -> int:
    """`timestamp` moved by `count` billing intervals (day/week/month/year), months clamped like Stripe does."""
    if interval == "day":
        return timestamp + count * DAY
    if interval == "week":
        return timestamp + count * 7 * DAY
    if interval not in ("month", "year"):
        raise ValueError(f"Unknown interval {interval!r}")
    start = datetime.fromtimestamp(timestamp, tz=UTC)
    months = count * (12 if interval == "year" else 1)
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


def _id_of(value: str | Mapping[str, Any] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(value["id"])


def _email_for(customer_id: str) -> str:
    return f"{customer_id.split('_', 1)[-1].lower()}@example.com"


# --- Customers, products, prices, coupons, discounts -------------------------------------------------------


def customer(
    id: str | None = None,
    email: str | None = None,
    name: str | None = "Test Customer",
    metadata: Mapping[str, str] | None = None,
    *,
    created: int | None = None,
    description: str | None = None,
    phone: str | None = None,
    delinquent: bool = False,
    default_payment_method: str | None = None,
    livemode: bool = False,
) -> StripeDict:
    """A `customer` object; `email` defaults to one derived from the id."""
    customer_id = id or next_id("cus")
    return {
        "id": customer_id,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": created if created is not None else now(),
        "currency": None,
        "default_source": None,
        "delinquent": delinquent,
        "description": description,
        "discount": None,
        "email": email if email is not None else _email_for(customer_id),
        "invoice_prefix": customer_id.split("_", 1)[-1][-8:].upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": default_payment_method,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": livemode,
        "metadata": dict(metadata or {}),
        "name": name,
        "next_invoice_sequence": 1,
        "phone": phone,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def product(
    id: str | None = None,
    name: str = "Pro",
    *,
    active: bool = True,
    created: int | None = None,
    description: str | None = None,
    default_price: str | None = None,
    metadata: Mapping[str, str] | None = None,
    livemode: bool = False,
) -> StripeDict:
    """A `product` object (of type service)."""
    created_at = created if created is not None else now()
    return {
        "id": id or next_id("prod"),
        "object": "product",
        "active": active,
        "created": created_at,
        "default_price": default_price,
        "description": description,
        "images": [],
        "livemode": livemode,
        "marketing_features": [],
        "metadata": dict(metadata or {}),
        "name": name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": created_at,
        "url": None,
    }


def price(
    id: str | None = None,
    product: str | Mapping[str, Any] | None = None,
    unit_amount: int | None = 1500,
    currency: str = "usd",
    interval: str | None = "month",
    interval_count: int = 1,
    usage_type: str = "licensed",
    nickname: str | None = None,
    *,
    active: bool = True,
    created: int | None = None,
    lookup_key: str | None = None,
    trial_period_days: int | None = None,
    metadata: Mapping[str, str] | None = None,
    livemode: bool = False,
) -> StripeDict:
    """A `price` object; recurring unless `interval` is None. `product` may be an id or a product dict."""
    recurring = None
    if interval is not None:
        recurring = {
            "interval": interval,
            "interval_count": interval_count,
            "meter": None,
            "trial_period_days": trial_period_days,
            "usage_type": usage_type,
        }
    return {
        "id": id or next_id("price"),
        "object": "price",
        "active": active,
        "billing_scheme": "per_unit",
        "created": created if created is not None else now(),
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": livemode,
        "lookup_key": lookup_key,
        "metadata": dict(metadata or {}),
        "nickname": nickname,
        "product": _id_of(product) or next_id("prod"),
        "recurring": recurring,
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": None if unit_amount is None else str(unit_amount),
    }


def plan_from_price(price_obj: Mapping[str, Any]) -> StripeDict:
    """The legacy `plan` twin of a recurring price, as subscription items still carry it."""
    recurring = price_obj.get("recurring") or {}
    return {
        "id": price_obj["id"],
        "object": "plan",
        "active": price_obj["active"],
        "amount": price_obj["unit_amount"],
        "amount_decimal": price_obj["unit_amount_decimal"],
        "billing_scheme": price_obj["billing_scheme"],
        "created": price_obj["created"],
        "currency": price_obj["currency"],
        "interval": recurring.get("interval"),
        "interval_count": recurring.get("interval_count"),
        "livemode": price_obj["livemode"],
        "metadata": dict(price_obj.get("metadata") or {}),
        "meter": recurring.get("meter"),
        "nickname": price_obj.get("nickname"),
        "product": _id_of(price_obj["product"]),
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": recurring.get("trial_period_days"),
        "usage_type": recurring.get("usage_type", "licensed"),
    }


def coupon(
    id: str | None = None,
    percent_off: float | None = None,
    amount_off: int | None = None,
    currency: str | None = None,
    duration: str = "forever",
    duration_in_months: int | None = None,
    *,
    name: str | None = None,
    created: int | None = None,
    max_redemptions: int | None = None,
    times_redeemed: int = 0,
    valid: bool = True,
    metadata: Mapping[str, str] | None = None,
    livemode: bool = False,
) -> StripeDict:
    """A `coupon`; 25 % off when neither `percent_off` nor `amount_off` is given (Stripe requires one)."""
    if percent_off is None and amount_off is None:
        percent_off = 25.0
    if amount_off is not None and currency is None:
        currency = "usd"
    if duration == "repeating" and duration_in_months is None:
        duration_in_months = 3
    return {
        "id": id or next_id("coupon").replace("coupon_test", "COUPON"),
        "object": "coupon",
        "amount_off": amount_off,
        "created": created if created is not None else now(),
        "currency": currency,
        "duration": duration,
        "duration_in_months": duration_in_months if duration == "repeating" else None,
        "livemode": livemode,
        "max_redemptions": max_redemptions,
        "metadata": dict(metadata or {}),
        "name": name,
        "percent_off": None if percent_off is None else float(percent_off),
        "redeem_by": None,
        "times_redeemed": times_redeemed,
        "valid": valid,
    }


_new_coupon = coupon  # `discount()` takes a parameter named `coupon`


def discount(
    id: str | None = None,
    coupon: str | Mapping[str, Any] | None = None,
    customer: str | Mapping[str, Any] | None = None,
    subscription: str | Mapping[str, Any] | None = None,
    *,
    start: int | None = None,
    end: int | None = None,
    expand_coupon: bool = False,
    promotion_code: str | None = None,
    subscription_item: str | None = None,
) -> StripeDict:
    """A `discount` in the current shape (coupon under `source`).

    `coupon` may be a coupon dict or an id; `source.coupon` is the id unless `expand_coupon` (as with
    `expand[]=discounts.source.coupon`), which needs a dict. A repeating coupon's `end` is derived from its
    `duration_in_months` when not given.
    """
    coupon_obj: Mapping[str, Any] = coupon if isinstance(coupon, Mapping) else _new_coupon(coupon)
    started = start if start is not None else now()
    if end is None and coupon_obj.get("duration") == "repeating":
        end = add_interval(started, "month", int(coupon_obj.get("duration_in_months") or 1))
    return {
        "id": id or next_id("di"),
        "object": "discount",
        "checkout_session": None,
        "customer": _id_of(customer),
        "end": end,
        "invoice": None,
        "invoice_item": None,
        "promotion_code": promotion_code,
        "source": {
            "type": "coupon",
            "coupon": copy.deepcopy(dict(coupon_obj)) if expand_coupon else coupon_obj["id"],
        },
        "start": started,
        "subscription": _id_of(subscription),
        "subscription_item": subscription_item,
    }


# --- Subscriptions ------------------------------------------------------------------------------------------


def subscription_item(
    price_obj: Mapping[str, Any],
    quantity: int = 1,
    *,
    id: str | None = None,
    subscription: str,
    current_period_start: int,
    current_period_end: int,
    created: int | None = None,
    discounts: Sequence[str] = (),
    metadata: Mapping[str, str] | None = None,
) -> StripeDict:
    """A `subscription_item`: the full price (product as an id), its plan twin and the item's own period."""
    item_price = copy.deepcopy(dict(price_obj))
    item_price["product"] = _id_of(item_price["product"])
    return {
        "id": id or next_id("si"),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": created if created is not None else current_period_start,
        "current_period_end": current_period_end,
        "current_period_start": current_period_start,
        "discounts": list(discounts),
        "metadata": dict(metadata or {}),
        "plan": plan_from_price(item_price),
        "price": item_price,
        "quantity": quantity,
        "subscription": subscription,
        "tax_rates": [],
    }


def cancellation_details(
    reason: str | None = None, feedback: str | None = None, comment: str | None = None
) -> StripeDict:
    """`cancellation_details` as on every subscription (all None until a cancellation is requested)."""
    return {"comment": comment, "feedback": feedback, "reason": reason}


def subscription(
    id: str | None = None,
    customer: str | Mapping[str, Any] | None = None,
    items: Sequence[tuple[Mapping[str, Any], int]] | None = None,
    status: str = "active",
    created: int | None = None,
    start_date: int | None = None,
    trial_start: int | None = None,
    trial_end: int | None = None,
    current_period_start: int | None = None,
    current_period_end: int | None = None,
    cancel_at_period_end: bool = False,
    cancel_at: int | None = None,
    canceled_at: int | None = None,
    ended_at: int | None = None,
    cancellation_details: Mapping[str, Any] | None = None,
    pause_collection: Mapping[str, Any] | None = None,
    discounts: Sequence[str | Mapping[str, Any]] = (),
    metadata: Mapping[str, str] | None = None,
    *,
    expand_discounts: bool = False,
    item_ids: Sequence[str] | None = None,
    latest_invoice: str | None = None,
    default_payment_method: str | None = None,
    collection_method: str = "charge_automatically",
    billing_cycle_anchor: int | None = None,
    description: str | None = None,
    livemode: bool = False,
) -> StripeDict:
    """A `subscription` in the current shape (periods on items, `discounts` list, no `discount`).

    `items` are `(price dict, quantity)` pairs (default: one new monthly price, quantity 1). Periods default
    from the status: a trialing subscription gets a 14-day trial (which is also the items' current period),
    others one billing interval from `start_date`. `canceled`/`incomplete_expired` get `canceled_at`/`ended_at`
    set to now when not given; `cancel_at_period_end` sets `cancel_at` to the period end as Stripe does.
    `discounts` are discount dicts or ids; they are rendered as ids unless `expand_discounts` (which needs
    dicts), as with `expand[]=discounts`.
    """
    subscription_id = id or next_id("sub")
    created_at = created if created is not None else now()
    started = start_date if start_date is not None else created_at
    pairs = list(items) if items is not None else [(price(), 1)]
    first_price = pairs[0][0] if pairs else price()
    recurring = first_price.get("recurring") or {"interval": "month", "interval_count": 1}

    if status == "trialing":
        trial_start = trial_start if trial_start is not None else started
        trial_end = trial_end if trial_end is not None else trial_start + DEFAULT_TRIAL_DAYS * DAY
    if current_period_start is None:
        current_period_start = trial_start if status == "trialing" and trial_start is not None else started
    if current_period_end is None:
        if status == "trialing" and trial_end is not None:
            current_period_end = trial_end
        else:
            current_period_end = add_interval(
                current_period_start, recurring["interval"], int(recurring["interval_count"])
            )
    if status in ("canceled", "incomplete_expired"):
        canceled_at = canceled_at if canceled_at is not None else max(now(), created_at)
        ended_at = ended_at if ended_at is not None else canceled_at
    if cancel_at_period_end and cancel_at is None:
        cancel_at = current_period_end
    if cancel_at_period_end and canceled_at is None:
        canceled_at = max(now(), created_at)
    details = cancellation_details or {}
    if details:
        details = {"comment": None, "feedback": None, "reason": None, **details}
    elif cancel_at_period_end or cancel_at is not None or status == "canceled":
        details = {"comment": None, "feedback": None, "reason": "cancellation_requested"}
    else:
        details = {"comment": None, "feedback": None, "reason": None}

    anchor = billing_cycle_anchor
    if anchor is None:
        anchor = current_period_end if status == "trialing" else current_period_start
    ids = list(item_ids or [])
    rendered_items = [
        subscription_item(
            price_obj,
            quantity,
            id=ids[index] if index < len(ids) else None,
            subscription=subscription_id,
            current_period_start=current_period_start,
            current_period_end=current_period_end,
            created=created_at,
        )
        for index, (price_obj, quantity) in enumerate(pairs)
    ]
    rendered_discounts: list[Any] = []
    for entry in discounts:
        if expand_discounts:
            if not isinstance(entry, Mapping):
                raise ValueError("expand_discounts needs discount dicts, not ids")
            rendered_discounts.append(copy.deepcopy(dict(entry)))
        else:
            rendered_discounts.append(_id_of(entry))

    return {
        "id": subscription_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": anchor,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"flexible": {"proration_discounts": "included"}, "type": "flexible", "updated_at": created_at},
        "billing_thresholds": None,
        "cancel_at": cancel_at,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": canceled_at,
        "cancellation_details": details,
        "collection_method": collection_method,
        "created": created_at,
        "currency": first_price.get("currency", "usd"),
        "customer": _id_of(customer) or next_id("cus"),
        "days_until_due": None if collection_method == "charge_automatically" else 30,
        "default_payment_method": default_payment_method,
        "default_source": None,
        "default_tax_rates": [],
        "description": description,
        "discounts": rendered_discounts,
        "ended_at": ended_at,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {
            "object": "list",
            "data": rendered_items,
            "has_more": False,
            "total_count": len(rendered_items),
            "url": f"/v1/subscription_items?subscription={subscription_id}",
        },
        "latest_invoice": latest_invoice,
        "livemode": livemode,
        "metadata": dict(metadata or {}),
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": dict(pause_collection) if pause_collection else None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": started,
        "status": status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": trial_start,
    }


def pause_collection(behavior: str = "void", resumes_at: int | None = None) -> StripeDict:
    """`pause_collection` for a paused subscription (`void`, `keep_as_draft` or `mark_uncollectible`)."""
    return {"behavior": behavior, "resumes_at": resumes_at}


# --- Invoices, charges, refunds, disputes -------------------------------------------------------------------


def invoice_line(
    amount: int,
    *,
    id: str | None = None,
    invoice: str | None = None,
    currency: str = "usd",
    price_obj: Mapping[str, Any] | None = None,
    quantity: int = 1,
    subscription: str | None = None,
    subscription_item: str | None = None,
    period_start: int | None = None,
    period_end: int | None = None,
    description: str | None = None,
    proration: bool = False,
    livemode: bool = False,
) -> StripeDict:
    """An invoice `line_item`: price under `pricing.price_details`, origin under `parent`."""
    started = period_start if period_start is not None else now()
    pricing = None
    if price_obj is not None:
        pricing = {
            "price_details": {"price": price_obj["id"], "product": _id_of(price_obj["product"])},
            "type": "price_details",
            "unit_amount_decimal": price_obj.get("unit_amount_decimal"),
        }
    parent = None
    if subscription is not None:
        parent = {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": subscription,
                "subscription_item": subscription_item,
            },
            "type": "subscription_item_details",
        }
    return {
        "id": id or next_id("il"),
        "object": "line_item",
        "amount": amount,
        "currency": currency,
        "description": description,
        "discount_amounts": [],
        "discountable": not proration,
        "discounts": [],
        "invoice": invoice,
        "livemode": livemode,
        "metadata": {},
        "parent": parent,
        "period": {"end": period_end if period_end is not None else started, "start": started},
        "pretax_credit_amounts": [],
        "pricing": pricing,
        "quantity": quantity,
        "subscription": subscription,
        "subtotal": amount,
        "taxes": [],
    }


def invoice(
    id: str | None = None,
    customer: str | Mapping[str, Any] | None = None,
    subscription_id: str | None = None,
    amount_due: int = 1500,
    amount_paid: int | None = None,
    currency: str = "usd",
    status: str = "paid",
    billing_reason: str = "subscription_create",
    attempt_count: int | None = None,
    created: int | None = None,
    period_start: int | None = None,
    period_end: int | None = None,
    next_payment_attempt: int | None = None,
    lines: Sequence[Mapping[str, Any]] | None = None,
    *,
    price_obj: Mapping[str, Any] | None = None,
    quantity: int = 1,
    subscription_item: str | None = None,
    line_period_start: int | None = None,
    line_period_end: int | None = None,
    subscription_metadata: Mapping[str, str] | None = None,
    collection_method: str = "charge_automatically",
    metadata: Mapping[str, str] | None = None,
    livemode: bool = False,
) -> StripeDict:
    """An `invoice` in the current shape (subscription under `parent.subscription_details`).

    Without `lines`, one line of `amount_due` is made (priced by `price_obj` when given, attached to the
    subscription item when `subscription_item` is given). `amount_paid` defaults to `amount_due` when paid,
    else 0; `attempt_count` to 1 once finalized and charged automatically; `status_transitions` follow the
    status. For a failed renewal use status="open", attempt_count>=1 and a `next_payment_attempt`.
    """
    invoice_id = id or next_id("in")
    created_at = created if created is not None else now()
    customer_id = _id_of(customer) or next_id("cus")
    if lines is None:
        lines = [
            invoice_line(
                amount_due,
                invoice=invoice_id,
                currency=currency,
                price_obj=price_obj,
                quantity=quantity,
                subscription=subscription_id,
                subscription_item=subscription_item,
                period_start=line_period_start if line_period_start is not None else created_at,
                period_end=line_period_end,
                livemode=livemode,
            )
        ]
    rendered_lines = [{**copy.deepcopy(dict(line)), "invoice": invoice_id} for line in lines]
    subtotal = sum(int(line["amount"]) for line in rendered_lines)
    finalized = status != "draft"
    if amount_paid is None:
        amount_paid = amount_due if status == "paid" else 0
    if attempt_count is None:
        attempt_count = 1 if finalized and collection_method == "charge_automatically" and status != "void" else 0
    customer_email = customer.get("email") if isinstance(customer, Mapping) else _email_for(customer_id)
    customer_name = customer.get("name") if isinstance(customer, Mapping) else None
    number = None if not finalized else f"{invoice_id.split('_', 1)[-1][-8:].upper()}-0001"
    parent = None
    if subscription_id is not None:
        parent = {
            "quote_details": None,
            "subscription_details": {
                "metadata": dict(subscription_metadata or {}),
                "subscription": subscription_id,
            },
            "type": "subscription_details",
        }
    return {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Trialloop Test",
        "account_tax_ids": None,
        "amount_due": amount_due,
        "amount_overpaid": 0,
        "amount_paid": amount_paid,
        "amount_remaining": max(amount_due - amount_paid, 0),
        "amount_shipping": 0,
        "application": None,
        "attempt_count": attempt_count,
        "attempted": attempt_count > 0,
        "auto_advance": status in ("draft", "open"),
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason,
        "collection_method": collection_method,
        "created": created_at,
        "currency": currency,
        "custom_fields": None,
        "customer": customer_id,
        "customer_address": None,
        "customer_email": customer_email,
        "customer_name": customer_name,
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": created_at if finalized else None,
        "ending_balance": 0 if finalized else None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_test/{invoice_id}" if finalized else None,
        "invoice_pdf": f"https://pay.stripe.com/invoice/acct_test/{invoice_id}/pdf" if finalized else None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {
            "object": "list",
            "data": rendered_lines,
            "has_more": False,
            "total_count": len(rendered_lines),
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        "livemode": livemode,
        "metadata": dict(metadata or {}),
        "next_payment_attempt": next_payment_attempt,
        "number": number,
        "on_behalf_of": None,
        "parent": parent,
        "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
        "period_end": period_end if period_end is not None else created_at,
        "period_start": period_start if period_start is not None else created_at,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": status,
        "status_transitions": {
            "finalized_at": created_at if finalized else None,
            "marked_uncollectible_at": created_at if status == "uncollectible" else None,
            "paid_at": created_at if status == "paid" else None,
            "voided_at": created_at if status == "void" else None,
        },
        "subtotal": subtotal,
        "subtotal_excluding_tax": subtotal,
        "test_clock": None,
        "threshold_reason": None,
        "total": subtotal,
        "total_discount_amounts": [],
        "total_excluding_tax": subtotal,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": created_at if finalized else None,
    }


def card_details(amount: int, *, brand: str = "visa", last4: str = "4242", country: str = "US") -> StripeDict:
    """Minimal `payment_method_details` of a card charge."""
    return {
        "card": {
            "amount_authorized": amount,
            "authorization_code": None,
            "brand": brand,
            "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
            "country": country,
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": "Xt5EWLLDS7FJjR1c",
            "funding": "credit",
            "installments": None,
            "last4": last4,
            "mandate": None,
            "network": brand,
            "network_token": {"used": False},
            "three_d_secure": None,
            "wallet": None,
        },
        "type": "card",
    }


def charge_outcome(succeeded: bool, *, reason: str | None = None) -> StripeDict:
    """`outcome` of an authorized charge or of an issuer decline."""
    if succeeded:
        return {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": 32,
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    return {
        "advice_code": "try_again_later",
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": "declined_by_network",
        "reason": reason or "generic_decline",
        "risk_level": "normal",
        "risk_score": 41,
        "seller_message": "The bank did not return any further details with this decline.",
        "type": "issuer_declined",
    }


def charge(
    id: str | None = None,
    customer: str | Mapping[str, Any] | None = None,
    amount: int = 1500,
    currency: str = "usd",
    status: str = "succeeded",
    paid: bool | None = None,
    captured: bool | None = None,
    amount_refunded: int = 0,
    refunded: bool = False,
    failure_code: str | None = None,
    failure_message: str | None = None,
    created: int | None = None,
    billing_details: Mapping[str, Any] | None = None,
    payment_method_details: Mapping[str, Any] | None = None,
    outcome: Mapping[str, Any] | None = None,
    balance_transaction: str | None = None,
    description: str | None = "Subscription creation",
    metadata: Mapping[str, str] | None = None,
    *,
    payment_intent: str | None = None,
    payment_method: str | None = None,
    disputed: bool = False,
    livemode: bool = False,
) -> StripeDict:
    """A card `charge`. status="failed" defaults to a `card_declined` decline with no balance transaction."""
    succeeded = status == "succeeded"
    charge_id = id or next_id("ch")
    customer_id = _id_of(customer)
    if status == "failed":
        failure_code = failure_code or "card_declined"
        failure_message = failure_message or "Your card was declined."
    paid = succeeded if paid is None else paid
    captured = succeeded if captured is None else captured
    if balance_transaction is None and succeeded:
        balance_transaction = next_id("txn")
    email = _email_for(customer_id) if customer_id else None
    return {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount if captured else 0,
        "amount_refunded": amount_refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": balance_transaction,
        "billing_details": dict(billing_details)
        if billing_details is not None
        else {
            "address": {
                "city": None,
                "country": "US",
                "line1": None,
                "line2": None,
                "postal_code": "94107",
                "state": None,
            },
            "email": email,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "calculated_statement_descriptor": "TRIALLOOP",
        "captured": captured,
        "created": created if created is not None else now(),
        "currency": currency,
        "customer": customer_id,
        "description": description,
        "disputed": disputed,
        "failure_balance_transaction": None,
        "failure_code": failure_code,
        "failure_message": failure_message,
        "fraud_details": {},
        "livemode": livemode,
        "metadata": dict(metadata or {}),
        "on_behalf_of": None,
        "outcome": dict(outcome) if outcome is not None else charge_outcome(status != "failed"),
        "paid": paid,
        "payment_intent": payment_intent or next_id("pi"),
        "payment_method": payment_method or next_id("pm"),
        "payment_method_details": dict(payment_method_details)
        if payment_method_details is not None
        else card_details(amount),
        "radar_options": {},
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/payment/{charge_id}" if succeeded else None,
        "refunded": refunded,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


def refund(
    id: str | None = None,
    charge: str | Mapping[str, Any] | None = None,
    amount: int = 1500,
    currency: str = "usd",
    status: str = "succeeded",
    reason: str | None = "requested_by_customer",
    *,
    created: int | None = None,
    payment_intent: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> StripeDict:
    """A card `refund` of `charge` (an id or a charge dict, whose payment intent it then shares)."""
    if payment_intent is None and isinstance(charge, Mapping):
        payment_intent = charge.get("payment_intent")
    return {
        "id": id or next_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": next_id("txn") if status == "succeeded" else None,
        "charge": _id_of(charge) or next_id("ch"),
        "created": created if created is not None else now(),
        "currency": currency,
        "destination_details": {
            "card": {"reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund"},
            "type": "card",
        },
        "metadata": dict(metadata or {}),
        "payment_intent": payment_intent,
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": status,
        "transfer_reversal": None,
    }


def dispute(
    id: str | None = None,
    charge: str | Mapping[str, Any] | None = None,
    amount: int = 1500,
    currency: str = "usd",
    reason: str = "fraudulent",
    status: str = "needs_response",
    *,
    created: int | None = None,
    evidence_due_by: int | None = None,
    payment_intent: str | None = None,
    metadata: Mapping[str, str] | None = None,
    livemode: bool = False,
) -> StripeDict:
    """A card `dispute` (chargeback) of `charge`; evidence is empty and due in 7 days by default."""
    created_at = created if created is not None else now()
    if payment_intent is None and isinstance(charge, Mapping):
        payment_intent = charge.get("payment_intent")
    evidence_fields = (
        "access_activity_log",
        "billing_address",
        "cancellation_policy",
        "cancellation_policy_disclosure",
        "cancellation_rebuttal",
        "customer_communication",
        "customer_email_address",
        "customer_name",
        "customer_purchase_ip",
        "customer_signature",
        "product_description",
        "receipt",
        "refund_policy",
        "service_date",
        "service_documentation",
        "uncategorized_file",
        "uncategorized_text",
    )
    return {
        "id": id or next_id("du"),
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": _id_of(charge) or next_id("ch"),
        "created": created_at,
        "currency": currency,
        "enhanced_eligibility_types": [],
        "evidence": dict.fromkeys(evidence_fields),
        "evidence_details": {
            "due_by": evidence_due_by if evidence_due_by is not None else created_at + 7 * DAY,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": livemode,
        "metadata": dict(metadata or {}),
        "network_reason_code": "10.4" if reason == "fraudulent" else None,
        "payment_intent": payment_intent,
        "payment_method_details": {
            "card": {"brand": "visa", "case_type": "chargeback", "network_reason_code": "10.4"},
            "type": "card",
        },
        "reason": reason,
        "status": status,
    }


# --- Events and signatures ----------------------------------------------------------------------------------


def event(
    type: str,
    obj: Mapping[str, Any],
    created: int | None = None,
    id: str | None = None,
    previous_attributes: Mapping[str, Any] | None = None,
    *,
    request_id: str | None = None,
    automatic: bool = False,
    idempotency_key: str | None = None,
    api_version: str = API_VERSION,
    livemode: bool = False,
    pending_webhooks: int = 1,
) -> StripeDict:
    """A snapshot `event` carrying a copy of `obj`, as delivered to a webhook endpoint.

    `previous_attributes` (for `*.updated` events) holds the previous values of the changed fields. The
    request id defaults to a new `req_...`; pass `automatic=True` for events Stripe raises on its own
    (renewals, trial ends), whose `request` is `{"id": None, "idempotency_key": None}`.
    """
    data: StripeDict = {"object": copy.deepcopy(dict(obj))}
    if previous_attributes is not None:
        data["previous_attributes"] = copy.deepcopy(dict(previous_attributes))
    request = None if automatic else request_id or next_id("req")
    return {
        "id": id or next_id("evt"),
        "object": "event",
        "api_version": api_version,
        "created": created if created is not None else now(),
        "data": data,
        "livemode": livemode,
        "pending_webhooks": pending_webhooks,
        "request": {"id": request, "idempotency_key": idempotency_key if request else None},
        "type": type,
    }


def encode(payload: Mapping[str, Any]) -> bytes:
    """The body Stripe would POST for an event: pretty-printed JSON, UTF-8."""
    return json.dumps(payload, indent=2).encode("utf-8")


def _signature(payload: bytes | str, secret: str, timestamp: int) -> str:
    body = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    signed_payload = f"{timestamp}.{body}".encode()
    return hmac.new(secret.encode("utf-8"), signed_payload, hashlib.sha256).hexdigest()


def sign_multi(payload: bytes | str, secrets: Iterable[str], timestamp: int | None = None) -> str:
    """A `Stripe-Signature` value with one `v1` per secret, as during a webhook secret roll."""
    at = timestamp if timestamp is not None else now()
    parts = [f"t={at}", *(f"v1={_signature(payload, secret, at)}" for secret in secrets)]
    return ",".join(parts)


def sign(payload: bytes | str, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` value `t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<payload>")>`."""
    return sign_multi(payload, [secret], timestamp)


def signed(
    event_or_body: Mapping[str, Any] | bytes | str, secret: str, timestamp: int | None = None
) -> tuple[bytes, str]:
    """`(body, Stripe-Signature header)` ready to POST to the webhook endpoint."""
    if isinstance(event_or_body, Mapping):
        body = encode(event_or_body)
    elif isinstance(event_or_body, str):
        body = event_or_body.encode("utf-8")
    else:
        body = event_or_body
    return body, sign(body, secret, timestamp)
