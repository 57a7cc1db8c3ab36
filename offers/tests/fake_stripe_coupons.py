"""FakeStripe plus `POST /v1/coupons`, `POST /v1/subscriptions` and `POST /v1/subscriptions/{id}/resume`, which
the shared fake does not serve and discount offers and win-back recoveries (a new subscription for a lapsed
trial, or the resumption of a trial Stripe paused for a missing payment method) need.

Kept beside the offers tests (the shared fake belongs to integrations): the parameters are checked against
the library's `CouponCreateParams`, a coupon id already in use answers `resource_already_exists` as Stripe does,
and the new coupon is built with `stripe_payloads.coupon`, so it is listed and retrieved like any other.
"""

from __future__ import annotations

import copy
from typing import Any

from integrations.tests import stripe_payloads as payloads
from integrations.tests.fake_stripe import (
    FakeStripe,
    RecordedRequest,
    StripeApiError,
    StripeDict,
    _accepted,
    _as_list,
    _integer,
)


class FakeStripeWithCoupons(FakeStripe):
    """The shared fake, also creating coupons."""

    def _route(self, record: RecordedRequest, request_id: str) -> StripeDict:
        if record.method == "POST" and record.path.rstrip("/") == "/v1/coupons":
            return self._create_coupon(record.params)
        if record.method == "POST" and record.path.rstrip("/") == "/v1/subscriptions":
            return self._create_subscription(record.params)
        parts = record.path.strip("/").split("/")
        if record.method == "POST" and len(parts) == 4 and parts[1] == "subscriptions" and parts[3] == "resume":
            return self._resume_subscription(parts[2], record, request_id)
        return super()._route(record, request_id)

    def _resume_subscription(self, subscription_id: str, record: RecordedRequest, request_id: str) -> StripeDict:
        """`POST /v1/subscriptions/{id}/resume`: only a paused subscription resumes; with `billing_cycle_anchor`
        now (Stripe's default) a new period starts at once. The customer pays the first invoice; the fake marks
        the subscription active, as Stripe does once that invoice is paid."""
        params = record.params
        self._check_params(params, _accepted("SubscriptionResumeParams"))
        before = self._require("subscriptions", subscription_id)
        if before["status"] != "paused":
            raise StripeApiError(400, "Only a paused subscription can be resumed.", param="subscription")
        anchor = params.get("billing_cycle_anchor", "now")
        if anchor not in ("now", "unchanged"):
            raise StripeApiError(
                400, "Invalid billing_cycle_anchor: must be now or unchanged.", param="billing_cycle_anchor"
            )
        sub = copy.deepcopy(before)
        at = payloads.now()
        sub["status"] = "active"
        if anchor == "now":
            sub["billing_cycle_anchor"] = at
            for item in sub["items"]["data"]:
                recurring = item["price"].get("recurring") or {"interval": "month", "interval_count": 1}
                end = payloads.add_interval(at, recurring["interval"], int(recurring["interval_count"]))
                item |= {"current_period_start": at, "current_period_end": end}
        self._put(sub)
        self._record_event("customer.subscription.resumed", sub, record, request_id, {"status": "paused"})
        return sub

    def _create_coupon(self, params: dict[str, Any]) -> StripeDict:
        self._check_params(params, _accepted("CouponCreateParams"))
        coupon_id = str(params.get("id") or self._new_id("coupon"))
        if coupon_id in self._store["coupons"]:
            raise StripeApiError(400, "Coupon already exists.", code="resource_already_exists", param="id")
        percent: Any = params.get("percent_off")
        amount: Any = params.get("amount_off")
        if (percent in (None, "")) == (amount in (None, "")):
            raise StripeApiError(400, "Exactly one of percent_off or amount_off is required.", param="percent_off")
        duration = str(params.get("duration") or "once")
        months: Any = params.get("duration_in_months")
        coupon = payloads.coupon(
            coupon_id,
            percent_off=float(percent) if percent not in (None, "") else None,
            amount_off=int(amount) if amount not in (None, "") else None,
            currency=params.get("currency") or None,
            duration=duration,
            duration_in_months=int(months) if months not in (None, "") else None,
            name=params.get("name") or None,
        )
        self._put(coupon)
        return coupon

    def _create_subscription(self, params: dict[str, Any]) -> StripeDict:
        """A new subscription: trialing until `trial_end` when given, `incomplete` with
        `payment_behavior=default_incomplete` (the first invoice waits for the customer to pay), else active."""
        self._check_params(params, _accepted("SubscriptionCreateParams"))
        customer = str(params.get("customer") or "")
        if not customer:
            raise StripeApiError(400, "Missing required param: customer.", param="customer")
        self._require("customers", customer, "customer")
        items = _as_list(params.get("items"))
        if not items:
            raise StripeApiError(400, "Missing required param: items.", param="items")
        pairs = [
            (self._require("prices", str(item.get("price")), f"items[{i}][price]"), int(item.get("quantity") or 1))
            for i, item in enumerate(items)
        ]
        trial_end = _integer(params["trial_end"], "trial_end") if "trial_end" in params else None
        if trial_end is not None:
            status = "trialing"
        elif params.get("payment_behavior") == "default_incomplete":
            status = "incomplete"
        else:
            status = "active"
        subscription = payloads.subscription(
            id=self._new_id("sub"),
            customer=customer,
            items=pairs,
            status=status,
            trial_start=payloads.now() if trial_end is not None else None,
            trial_end=trial_end,
            metadata=params.get("metadata") or {},
        )
        if "discounts" in params:
            subscription["discounts"] = self._discount_ids(subscription, _as_list(params["discounts"]))
        self._put(subscription)
        return subscription
