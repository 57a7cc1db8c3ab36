"""What happens around the trials: teammates joining, direct checkouts, rare subscription states, revenue and
last-seen figures settled at the end."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal

from audiences.models import Customer
from config.demo.people import Signup, acquisition, customer_timeline, new_account, new_customer
from config.demo.plan import Billing, World, add_months, billing_period, hours_span, random_token, signup_time
from config.demo.vocabulary import (
    API_CALLS_UNIT_CENTS,
    REPEATING_MONTHS,
    SIGNUP_SOURCE_WEIGHTS,
    SIGNUP_SOURCES,
    STRIPE_SUBSCRIPTION_PREFIX,
    USE_CASE_WEIGHTS,
    USE_CASES,
)
from integrations.stripe.models import BillingInterval, Subscription


def simulate_teammates(
    world: World,
    owner: Customer,
    invited: list[datetime],
    *,
    trial_end: datetime,
    active_until: datetime | None,
    limit: int,
) -> None:
    """Invitees who accepted: more seats on the owner's account, each with a lighter usage pattern of their own.

    `active_until` is when the product stopped being usable (trial lapsed, subscription ended); None while the
    trial runs. Nobody joins after that, or after "now".
    """
    rng = world.rng
    usable_until = active_until or world.now
    paid = usable_until > trial_end
    for moment in invited:
        if len(world.customers) >= limit or rng.random() >= 0.65:
            continue
        joined = moment + hours_span(rng.uniform(0.1, 72))
        if joined >= min(world.now, usable_until):
            continue
        signup = Signup(
            kind="company",
            account=owner.account,
            signed_up=joined,
            signup_source="invite",
            use_case=str(owner.traits["use_case"]),
        )
        teammate = new_customer(world, signup, with_stripe=False, invited_by=owner)
        timeline = customer_timeline(world, teammate, browsers=1)
        timeline.signup(
            joined,
            landing_pages=("Accept invite",),
            referrer="",
            campaign=None,
            signed_up_properties={
                "method": "invite",
                "invited": True,
                "invited_by": owner.user_id,
                "use_case": signup.use_case,
            },
        )
        in_trial_until = min(trial_end, usable_until)
        for _ in range(rng.randint(0, 4)):
            if joined < in_trial_until:
                timeline.session(joined + (in_trial_until - joined) * rng.random(), (("Report Generated", 0.2),))
        if paid:
            timeline.weekly_usage(
                max(joined, trial_end),
                usable_until,
                sessions_per_week=(3, 3, 2, 1),
                extra=(("Report Generated", 0.2), ("Project Created", 0.05)),
            )
        timeline.commit()


def simulate_direct_checkout(world: World, *, expired: bool) -> None:
    """A buyer who skipped the trial and whose first payment failed: `incomplete` (< 23 h) or `incomplete_expired`.

    Stripe expires an incomplete subscription after 23 hours, so the live ones are from the last day.
    """
    rng = world.rng
    signed_up = signup_time(world) - timedelta(days=2) if expired else world.now - hours_span(rng.uniform(1, 20))
    signup = Signup(
        kind="company",
        account=new_account(world, signed_up),
        signed_up=signed_up,
        signup_source=rng.choices(SIGNUP_SOURCES, weights=SIGNUP_SOURCE_WEIGHTS)[0],
        use_case=rng.choices(USE_CASES, weights=USE_CASE_WEIGHTS)[0],
    )
    customer = new_customer(world, signup, with_stripe=True)
    plan = world.catalogue.plans[rng.choice(("starter_month", "team_month", "team_year"))]
    timeline = customer_timeline(world, customer, browsers=1)
    campaign, referrer = acquisition(rng, signup.signup_source)
    timeline.signup(
        signed_up,
        landing_pages=("Pricing", "Checkout"),
        referrer=referrer,
        campaign=campaign,
        signed_up_properties={
            "method": "email",
            "use_case": signup.use_case,
            "signup_source": signup.signup_source,
            "invited": False,
            "plan": plan.product.name,
        },
    )
    timeline.track(signed_up + timedelta(seconds=5), "Checkout Started", {"plan": plan.name})
    timeline.commit()
    expires = signed_up + timedelta(hours=23)
    world.subscriptions.append(
        Subscription(
            stripe_subscription_id=random_token(world, STRIPE_SUBSCRIPTION_PREFIX),
            customer=customer,
            plan=plan,
            status=Subscription.Status.INCOMPLETE_EXPIRED if expired else Subscription.Status.INCOMPLETE,
            started_at=signed_up,
            current_period_start=signed_up,
            current_period_end=add_months(signed_up, 12 if plan.interval == BillingInterval.YEAR else 1),
            ended_at=expires if expired else None,
            stripe_state_at=expires if expired else signed_up,
            metadata={"demo": True},
        )
    )


def assign_rare_statuses(world: World) -> None:
    """Give some subscriptions the states only time produces: past_due, unpaid, paused, cancel at period end.

    Picked from eligible pools with a minimum of one each, so every Subscription.Status appears from a few
    hundred customers up; only subscriptions that already paid an invoice can fall behind on one.
    """
    rng = world.rng
    now = world.now
    running = [
        billing
        for billing in world.billings
        if billing.subscription.status == Subscription.Status.ACTIVE and not billing.subscription.cancel_at_period_end
    ]
    # Only monthly subscriptions past their first paid invoice can fall behind; unpaid ones first, as they need
    # the longest history (two failed invoices), then past due from what is left.
    monthly = [billing for billing in running if billing.months == 1 and billing_period(billing.anchor, 1, now)[0] >= 1]
    older = [billing for billing in monthly if billing_period(billing.anchor, 1, now)[0] >= 2] or monthly
    unpaid = rng.sample(older, min(len(older), max(1, round(0.025 * len(running)))))
    chosen = {id(billing) for billing in unpaid}
    rest = [billing for billing in monthly if id(billing) not in chosen]
    past_due = rng.sample(rest, min(len(rest), max(1, round(0.06 * len(running)))))
    chosen.update(id(billing) for billing in past_due)
    for billings, status in ((unpaid, Subscription.Status.UNPAID), (past_due, Subscription.Status.PAST_DUE)):
        for billing in billings:
            index = billing_period(billing.anchor, 1, now)[0]
            billing.subscription.status = status
            billing.failed_invoices = min(index, 2 if status == Subscription.Status.UNPAID else 1)
            billing.subscription.stripe_state_at = billing.subscription.current_period_start
    if not any(billing.subscription.cancel_at_period_end for billing in world.billings):
        candidates = [billing for billing in running if id(billing) not in chosen]
        if candidates:
            subscription = rng.choice(candidates).subscription
            assert subscription.current_period_start is not None
            subscription.cancel_at_period_end = True
            subscription.canceled_at = max(subscription.current_period_start, now - timedelta(days=rng.uniform(1, 5)))
            subscription.stripe_state_at = subscription.canceled_at

    # Trials that ended without a payment method within the win-back window: Stripe pauses some instead.
    lapsed = [
        trial
        for trial in world.trials
        if not trial.converted
        and trial.subscription.status == Subscription.Status.CANCELED
        and now - timedelta(days=30) <= trial.trial_end <= now
        and id(trial.subscription.customer) not in world.free_fallbacks
    ]
    for trial in rng.sample(lapsed, min(len(lapsed), max(1, round(0.3 * len(lapsed))))):
        subscription = trial.subscription
        subscription.status = Subscription.Status.PAUSED
        subscription.canceled_at = subscription.ended_at = None


def finalise_revenue(world: World) -> None:
    """Lifetime value per customer from the invoices each paid subscription has paid, and subscriber status."""
    rng = world.rng
    ltv: Counter[int] = Counter()
    for billing in world.billings:
        ltv[id(billing.subscription.customer)] += _lifetime_value_cents(rng, world.now, billing)
    statuses: dict[int, set[str]] = {}
    for subscription in world.subscriptions:
        statuses.setdefault(id(subscription.customer), set()).add(subscription.status)
    for customer in world.customers:
        customer.ltv_cents = ltv[id(customer)]
        customer.subscriber_status = _subscriber_status(statuses.get(id(customer), set()))


def _subscriber_status(statuses: set[str]) -> str:
    """Subscriber status from a customer's subscription statuses.

    Active while any subscription is active or past due; canceled once they are canceled (a lapsed trial
    included) or left unpaid; blank for people who are only trialing, paused after a trial, or never completed
    a first payment.
    """
    if statuses & {Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE}:
        return Customer.SubscriberStatus.ACTIVE
    if statuses & {Subscription.Status.CANCELED, Subscription.Status.UNPAID}:
        return Customer.SubscriberStatus.CANCELED
    return Customer.SubscriberStatus.NONE


def _lifetime_value_cents(rng: random.Random, now: datetime, billing: Billing) -> int:
    """What a paid subscription has paid so far: each started period's invoice, less failed ones and discounts."""
    subscription = billing.subscription
    end = subscription.ended_at or now
    started = 0
    while add_months(billing.anchor, started * billing.months) < end:
        started += 1
    total = 0
    for index in range(max(0, started - billing.failed_invoices)):
        amount = Decimal(billing.invoice_cents)
        if billing.metered:
            amount += API_CALLS_UNIT_CENTS * rng.randint(3, 60)
        duration = subscription.discount_duration
        applies = (
            duration == Subscription.DiscountDuration.FOREVER
            or (duration == Subscription.DiscountDuration.ONCE and index == 0)
            or (duration == Subscription.DiscountDuration.REPEATING and index * billing.months < REPEATING_MONTHS)
        )
        if applies and subscription.discount_percent is not None:
            amount -= amount * subscription.discount_percent / 100
        if applies and subscription.discount_amount_cents:
            amount -= subscription.discount_amount_cents
        total += max(0, round(amount))
    return total


def finalise_seen(world: World) -> None:
    """Sort the event log by time (ids then follow arrival order) and set each customer's first and last seen."""
    world.events.sort(key=lambda event: event.timestamp)
    first: dict[int, datetime] = {}
    last: dict[int, datetime] = {}
    for event in world.events:
        key = id(event.customer)
        first.setdefault(key, event.timestamp)
        last[key] = event.timestamp
    for customer in world.customers:
        customer.first_seen_at = first.get(id(customer))
        customer.last_seen_at = last.get(id(customer))
