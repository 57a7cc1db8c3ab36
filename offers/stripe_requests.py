"""The Stripe requests of a session's moves: planned once, recorded as a `SessionStep`, sent under idempotency keys.

- retrying a failed step re-sends the very same requests under the same keys — Stripe applies each at most
  once even when the first answer was lost;
- after an error Stripe stores under the key (a card or validation error, any 4xx but 409/429), the retry
  uses the next generation of keys, as replaying the key would only replay the error;
- a test session (a test customer's) plans the same requests but sends none: the step is `simulated`.
"""

from __future__ import annotations

import calendar
import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

import stripe

from integrations.stripe.api import StripeNotConfigured, stripe_client
from integrations.stripe.models import BillingInterval, Plan, Subscription
from offers.errors import SessionError, StripeStepFailed, StripeUnavailable, WrongState
from offers.models import (
    CancellationSession,
    Offer,
    SessionStep,
)


def add_months(moment: datetime, months: int) -> datetime:
    """The same day `months` later (the month's last day when it is shorter)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def add_interval(moment: datetime, interval: str, count: int) -> datetime:
    """`moment` plus `count` billing intervals."""
    if interval == BillingInterval.YEAR:
        return add_months(moment, 12 * count)
    if interval == BillingInterval.MONTH:
        return add_months(moment, count)
    if interval == BillingInterval.WEEK:
        return moment + timedelta(weeks=count)
    return moment + timedelta(days=count)


def _timestamp(moment: datetime) -> int:
    return int(moment.timestamp())


def win_back_plan(
    session: CancellationSession, offer: Offer, client: stripe.StripeClient | None, now: datetime
) -> StripePlan:
    """The requests that win back the lapsed trial: a paused one is resumed (`_resume_plan`), a canceled or
    expired one replaced (`_replace_plan`)."""
    if session.subscription.status == Subscription.Status.PAUSED:
        return _resume_plan(session, offer, now)
    return _replace_plan(session, offer, now)


def _resume_plan(session: CancellationSession, offer: Offer, now: datetime) -> StripePlan:
    """Revive the trial Stripe paused for a missing payment method, with the offer applied: a trial extension
    sets a new `trial_end` (now + days) on the paused subscription, which Stripe resumes as trialing; a
    discount attaches the offer's coupon, then `POST /v1/subscriptions/{id}/resume` with
    `billing_cycle_anchor=now` starts a new period at once — its first invoice, discounted, waits for the
    customer to pay."""
    subscription = session.subscription
    target = subscription.stripe_subscription_id or f"(test subscription {subscription.pk})"
    if offer.kind == Offer.Kind.TRIAL_EXTENSION:
        until = now + timedelta(days=int(offer.parameters["days"]))
        return StripePlan(
            [_call("update", "subscriptions.update", {"trial_end": _timestamp(until)}, target=target)], until
        )
    if offer.kind == Offer.Kind.DISCOUNT:
        coupon = _coupon_params(offer)
        return StripePlan(
            [
                _call("coupon", "coupons.create", coupon, target=coupon["id"]),
                _call("update", "subscriptions.update", {"discounts": [{"coupon": coupon["id"]}]}, target=target),
                _call("resume", "subscriptions.resume", {"billing_cycle_anchor": "now"}, target=target),
            ],
            _win_back_discount_end(offer, now),
        )
    raise WrongState("This offer cannot win back a lapsed trial; edit the rule.", code="offer_invalid")


def _replace_plan(session: CancellationSession, offer: Offer, now: datetime) -> StripePlan:
    """A new subscription to the lapsed trial's price for the same customer (Stripe cannot revive a canceled or
    expired subscription): with `trial_end` = now + days for a trial extension, or with the offer's coupon for
    a discount — then `payment_behavior=default_incomplete`, so a customer without a card is not charged and
    failed, and the first invoice waits for them to pay. The metadata names the session and the old trial."""
    subscription = session.subscription
    customer_id = session.customer.stripe_customer_id or f"(test customer {session.customer_id})"
    price = subscription.plan.stripe_price_id or f"(price of plan {subscription.plan_id})"
    create: dict[str, Any] = {
        "customer": customer_id,
        "items": [{"price": price, "quantity": subscription.quantity}],
        "metadata": {
            "trialloop_win_back_session": session.token,
            "trialloop_lapsed_subscription": subscription.stripe_subscription_id or "",
        },
    }
    calls: list[dict[str, Any]] = []
    if offer.kind == Offer.Kind.TRIAL_EXTENSION:
        until = now + timedelta(days=int(offer.parameters["days"]))
        create["trial_end"] = _timestamp(until)
        active_until: datetime | None = until
    elif offer.kind == Offer.Kind.DISCOUNT:
        coupon = _coupon_params(offer)
        calls.append(_call("coupon", "coupons.create", coupon, target=coupon["id"]))
        create["discounts"] = [{"coupon": coupon["id"]}]
        create["payment_behavior"] = "default_incomplete"
        active_until = _win_back_discount_end(offer, now)
    else:
        raise WrongState("This offer cannot win back a lapsed trial; edit the rule.", code="offer_invalid")
    calls.append(_call("create", "subscriptions.create", create, target=None))
    return StripePlan(calls, active_until)


def _win_back_discount_end(offer: Offer, now: datetime) -> datetime | None:
    if offer.parameters["duration"] == "repeating":
        return add_months(now, int(offer.parameters["duration_in_months"]))
    return None  # once: the first invoice, whenever it is paid; forever: no end


@dataclass
class StripePlan:
    """What a step will send to Stripe, and what accepting means for the session."""

    calls: list[dict[str, Any]]
    active_until: datetime | None


def _call(name: str, method: str, params: dict[str, Any], *, target: str | None = None) -> dict[str, Any]:
    return {"name": name, "method": method, "target": target, "params": params, "status": "planned"}


def coupon_id_for(offer: Offer) -> str:
    """A coupon id derived from the offer and its discount, so every session of the offer reuses one coupon and
    editing the discount makes a new one (Stripe coupons cannot change their amount or duration)."""
    params = offer.parameters
    fingerprint = "|".join(
        str(params.get(key) or "")
        for key in ("percent_off", "amount_off_cents", "currency", "duration", "duration_in_months")
    )
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:10]
    return f"trialloop_offer_{offer.pk}_{digest}"


def _coupon_params(offer: Offer) -> dict[str, Any]:
    params = offer.parameters
    coupon: dict[str, Any] = {"id": coupon_id_for(offer), "name": offer.name[:40], "duration": params["duration"]}
    if params["duration"] == "repeating":
        coupon["duration_in_months"] = params["duration_in_months"]
    if "percent_off" in params:
        coupon["percent_off"] = params["percent_off"]
    else:
        coupon["amount_off"] = params["amount_off_cents"]
        coupon["currency"] = params["currency"]
    return coupon


def _live_subscription(client: stripe.StripeClient, subscription_id: str) -> dict[str, Any]:
    result: dict[str, Any] = client.v1.subscriptions.retrieve(subscription_id).to_dict()
    return result


def _discount_end(offer: Offer, subscription: Subscription, now: datetime) -> datetime | None:
    params = offer.parameters
    if params["duration"] == "forever":
        return None
    if params["duration"] == "repeating":
        return add_months(now, int(params["duration_in_months"]))
    # once: the next invoice is discounted, and it pays for the period after the current one.
    period_end = (
        subscription.current_period_end
        if subscription.current_period_end and subscription.current_period_end > now
        else now
    )
    return add_interval(period_end, subscription.plan.interval, subscription.plan.interval_count)


def accept_plan(
    session: CancellationSession, offer: Offer, client: stripe.StripeClient | None, now: datetime
) -> StripePlan:
    """The requests that apply `offer` to the session's subscription; `client` is None in a test session, where
    values only Stripe knows (subscription item, existing discounts) are written as placeholders."""
    subscription = session.subscription
    target = subscription.stripe_subscription_id or f"(test subscription {subscription.pk})"
    params = offer.parameters
    if offer.kind == Offer.Kind.DISCOUNT:
        coupon = _coupon_params(offer)
        discounts: list[dict[str, str]] = []
        if params.get("existing_coupon") == "keep":
            if client is not None:
                current = _live_subscription(client, target)
                discounts = [{"discount": d if isinstance(d, str) else d["id"]} for d in current.get("discounts") or []]
            elif subscription.coupon_id:
                discounts = [{"discount": f"(current discount of coupon {subscription.coupon_id})"}]
        discounts.append({"coupon": coupon["id"]})
        return StripePlan(
            [
                _call("coupon", "coupons.create", coupon, target=coupon["id"]),
                _call("update", "subscriptions.update", {"discounts": discounts}, target=target),
            ],
            _discount_end(offer, subscription, now),
        )
    if offer.kind == Offer.Kind.TRIAL_EXTENSION:
        base = subscription.trial_end if subscription.trial_end and subscription.trial_end > now else now
        trial_end = base + timedelta(days=int(params["days"]))
        return StripePlan(
            [_call("update", "subscriptions.update", {"trial_end": _timestamp(trial_end)}, target=target)], trial_end
        )
    if offer.kind == Offer.Kind.PAUSE:
        if "until" in params:
            resumes = datetime.combine(date.fromisoformat(params["until"]), time.min, tzinfo=UTC)
            if resumes <= now:
                raise WrongState("This pause offer ends in the past; edit the offer.", code="offer_expired")
        elif params["unit"] == "months":
            resumes = add_months(now, int(params["count"]))
        else:
            resumes = now + timedelta(**{params["unit"]: int(params["count"])})
        pause = {"behavior": "void", "resumes_at": _timestamp(resumes)}
        return StripePlan(
            [_call("update", "subscriptions.update", {"pause_collection": pause}, target=target)], resumes
        )
    if offer.kind == Offer.Kind.PLAN_CHANGE:
        new_plan = Plan.objects.filter(pk=params["plan_id"]).first()
        if new_plan is None or not new_plan.stripe_price_id:
            raise WrongState("This offer's plan no longer exists in Stripe; edit the offer.", code="offer_invalid")
        item_id = f"(item of {subscription.plan.stripe_price_id or 'the current plan'})"
        if client is not None:
            items = _live_subscription(client, target)["items"]["data"]
            current_price = subscription.plan.stripe_price_id
            item = next((i for i in items if i["price"]["id"] == current_price), items[0] if items else None)
            if item is None:
                raise SessionError("The subscription has no item to change.", code="no_item")
            item_id = item["id"]
        update = {
            "items": [{"id": item_id, "price": new_plan.stripe_price_id}],
            "proration_behavior": params["proration_behavior"],
        }
        return StripePlan([_call("update", "subscriptions.update", update, target=target)], None)
    raise SessionError(f"Offers of kind {offer.kind} are not applied through Stripe.", code="not_applicable")


def cancel_plan(session: CancellationSession) -> StripePlan:
    """Cancel at period end (an update) or at once (a cancel), with the reason's Stripe feedback and comment."""
    target = session.subscription.stripe_subscription_id or f"(test subscription {session.subscription_id})"
    details: dict[str, str] = {}
    if session.reason is not None:
        details["feedback"] = session.reason.stripe_feedback
    if session.feedback:
        details["comment"] = session.feedback
    if session.flow.cancel_immediately:
        params: dict[str, Any] = {"cancellation_details": details} if details else {}
        return StripePlan([_call("cancel", "subscriptions.cancel", params, target=target)], None)
    params = {"cancel_at_period_end": True}
    if details:
        params["cancellation_details"] = details
    return StripePlan([_call("update", "subscriptions.update", params, target=target)], None)


def _retry_same_key(error: stripe.StripeError) -> bool:
    """Whether Stripe lets the same idempotency key be tried again: yes after network errors, 409, 429 and 5xx
    (nothing was stored, or the request may not have run); no after other 4xx, whose answer is stored."""
    status = error.http_status
    return status is None or status >= 500 or status in (409, 429)


def _summary(obj: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "object",
        "status",
        "trial_end",
        "cancel_at_period_end",
        "cancel_at",
        "discounts",
        "pause_collection",
        "duration",
        "percent_off",
        "amount_off",
    )
    return {key: obj[key] for key in keys if key in obj}


def _send(client: stripe.StripeClient, call: dict[str, Any], key: str) -> dict[str, Any]:
    options = cast(Any, {"idempotency_key": key})
    params = cast(Any, call["params"])
    if call["method"] == "coupons.create":
        try:
            existing: dict[str, Any] = client.v1.coupons.retrieve(call["target"]).to_dict()
        except stripe.InvalidRequestError as missing:
            if missing.code != "resource_missing":
                raise
        else:
            return {**_summary(existing), "reused": True}
        return _summary(client.v1.coupons.create(params, options).to_dict())
    if call["method"] == "subscriptions.update":
        return _summary(client.v1.subscriptions.update(call["target"], params, options).to_dict())
    if call["method"] == "subscriptions.create":
        return _summary(client.v1.subscriptions.create(params, options).to_dict())
    if call["method"] == "subscriptions.resume":
        return _summary(client.v1.subscriptions.resume(call["target"], params, options).to_dict())
    if call["method"] == "subscriptions.cancel":
        return _summary(client.v1.subscriptions.cancel(call["target"], params, options).to_dict())
    raise ValueError(f"unknown Stripe method {call['method']}")


def _key(session: CancellationSession, step: SessionStep, call: dict[str, Any]) -> str:
    return f"trialloop:{session.token}:{step.kind}:{call['name']}:{step.key_generation}"


def stripe_step_run(
    session: CancellationSession,
    kind: str,
    plan: Any,
    *,
    data: dict[str, Any],
) -> tuple[SessionStep, StripeStepFailed | None]:
    """Plan (first attempt only) and send a step's requests; returns the recorded step and the failure, if any.

    `plan` is called with the Stripe client (None for a test session) and returns a `StripePlan`. A request that
    already succeeded in an earlier attempt is not sent again.
    """
    step = SessionStep.objects.filter(session=session, kind=kind).first()
    if step is None:
        step = SessionStep(session=session, kind=kind, status=SessionStep.Status.PENDING, data=data, attempts=0)
    elif step.status == SessionStep.Status.FAILED and step.data.get("retry_same_key") is False:
        step.key_generation += 1
    step.attempts += 1
    step.error = ""
    if session.is_test:
        built: StripePlan = plan(None)
        step.stripe_calls = [{**call, "status": "simulated"} for call in built.calls]
        step.data = {**data, "active_until": built.active_until.isoformat() if built.active_until else None}
        step.status = SessionStep.Status.SIMULATED
        step.save()
        return step, None
    try:
        client = stripe_client()
    except StripeNotConfigured as missing:
        step.status, step.error = SessionStep.Status.FAILED, str(missing)
        step.save()
        raise StripeUnavailable("Stripe is not configured on this Trialloop (STRIPE_API_KEY).") from missing
    failure: StripeStepFailed | None = None
    try:
        if not step.stripe_calls:
            built = plan(client)
            step.stripe_calls = built.calls
            step.data = {**data, "active_until": built.active_until.isoformat() if built.active_until else None}
        for call in step.stripe_calls:
            if call["status"] == "succeeded":
                continue
            call["idempotency_key"] = _key(session, step, call)
            try:
                call["response"] = _send(client, call, call["idempotency_key"])
            except stripe.StripeError as error:
                call["status"] = "failed"
                call["error"] = {"http_status": error.http_status, "code": error.code, "message": str(error)}
                raise
            call["status"] = "succeeded"
    except stripe.StripeError as error:
        same_key = _retry_same_key(error)
        message = error.user_message or str(error) or type(error).__name__
        failure = StripeStepFailed(
            f"Stripe could not apply this step: {message}",
            stripe_status=error.http_status,
            stripe_code=error.code,
            retry_same_key=same_key,
        )
        step.status, step.error = SessionStep.Status.FAILED, failure.message
        step.data = {**step.data, "retry_same_key": same_key}
    else:
        step.status = SessionStep.Status.SUCCEEDED
        step.data = {key: value for key, value in step.data.items() if key != "retry_same_key"}
    step.save()
    return step, failure
