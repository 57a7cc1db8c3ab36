"""Simulating trials: who signs up, what they do, and whether they convert (activation and habit drive it)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from audiences.models import Customer
from config.demo.account_simulation import (
    assign_rare_statuses,
    finalise_revenue,
    finalise_seen,
    simulate_direct_checkout,
    simulate_teammates,
)
from config.demo.people import Signup, acquisition, customer_timeline, fit_tier, new_account, new_customer
from config.demo.plan import (
    Billing,
    PlannedTrial,
    World,
    add_months,
    billing_period,
    hours_span,
    random_token,
    signup_time,
)
from config.demo.vocabulary import (
    ACTIVATION_WINDOW,
    CONVERSION_BASE,
    COUPON_LAUNCH,
    COUPON_LOYALTY,
    COUPON_PARTNER,
    COUPON_WELCOME,
    FIT_CONVERSION,
    FIT_ENGAGEMENT,
    HABIT_MIN_ACTIONS,
    HABIT_WINDOW,
    SIGNUP_SOURCE_WEIGHTS,
    SIGNUP_SOURCES,
    SOURCE_CONVERSION,
    STRIPE_ITEM_PREFIX,
    STRIPE_SUBSCRIPTION_PREFIX,
    TIERS,
    USE_CASE_WEIGHTS,
    USE_CASES,
    Coupon,
)
from integrations.stripe.models import BillingInterval, Subscription, SubscriptionAddOn


def simulate(world: World) -> None:
    """Plan the whole data set: trials (with the teammates they bring) up to the target size, a few checkout-only
    buyers, then the rarer Stripe states (past due, unpaid, paused…) and the revenue figures that depend on them."""
    direct_each = max(1, round(world.target_customers * 0.004))
    limit = world.target_customers - 2 * direct_each
    while len(world.customers) < limit:
        _simulate_trial(world, limit=limit)
    for _ in range(direct_each):
        simulate_direct_checkout(world, expired=False)
        simulate_direct_checkout(world, expired=True)
    assign_rare_statuses(world)
    finalise_revenue(world)
    finalise_seen(world)


def _simulate_trial(world: World, *, limit: int) -> None:
    """One trial signup end to end: who they are, what they did, whether they paid, and the teammates they brought.

    Behaviour is drawn first (activation, habit) and the events are laid out to satisfy exactly those flags;
    conversion then depends on the flags, so the truth is in the events, where analytics will look for it.
    """
    rng = world.rng
    kind = rng.choices(("company", "freemail", "edu"), weights=(76, 17, 7))[0]
    signed_up = signup_time(world)
    signup = Signup(
        kind=kind,
        account=new_account(world, signed_up) if kind == "company" else None,
        signed_up=signed_up,
        signup_source=rng.choices(SIGNUP_SOURCES, weights=SIGNUP_SOURCE_WEIGHTS)[0],
        use_case=rng.choices(USE_CASES, weights=USE_CASE_WEIGHTS)[0],
    )
    owner = new_customer(world, signup, with_stripe=True)
    employees = int(signup.account.traits["employees"]) if signup.account is not None else 1
    fit = fit_tier(signup, str(owner.traits["role"]))

    trial_days = 30 if rng.random() < (0.35 if employees >= 200 else 0.08) else 14
    trial_type = "opt_out" if rng.random() < 0.10 else "opt_in"
    trial_plan = world.catalogue.plans["business_month" if employees >= 200 else "team_month"]
    trial_end = signed_up + timedelta(days=trial_days)

    # Behaviour first, then the conversion it earns.
    engagement = FIT_ENGAGEMENT[fit] * (0.7 if signup.use_case == "Just exploring" else 1.0)
    engagement *= 1.1 if signup.signup_source in ("referral", "partner") else 1.0
    project_early = rng.random() < min(0.9, 0.55 * engagement)
    invite_base = (0.6 if project_early else 0.2) if kind == "company" else (0.2 if project_early else 0.06)
    invites = rng.random() < min(0.9, invite_base * engagement)
    activated = project_early and invites
    habit = rng.random() < (0.75 if activated else 0.28 if (project_early or invites) else 0.06)
    p_convert = CONVERSION_BASE[(activated, habit)] * FIT_CONVERSION[fit] * SOURCE_CONVERSION[signup.signup_source]
    if trial_type == "opt_out":
        p_convert += 0.30  # card on file: the trial rolls into a paid plan unless cancelled
    converts = trial_end <= world.now and rng.random() < min(0.95, p_convert)

    timeline = customer_timeline(world, owner, browsers=rng.choices((0, 1, 2), weights=(10, 68, 22))[0])
    campaign, referrer = acquisition(rng, signup.signup_source)
    timeline.signup(
        signed_up,
        landing_pages=rng.choice(
            (("Sign up",), ("Home", "Sign up"), ("Home", "Pricing", "Sign up"), ("Pricing", "Sign up"))
        ),
        referrer=referrer,
        campaign=campaign,
        signed_up_properties={
            "method": rng.choices(("email", "google", "github"), weights=(5, 4, 1))[0],
            "use_case": signup.use_case,
            "signup_source": signup.signup_source,
            "invited": False,
        },
    )
    timeline.track(
        signed_up + timedelta(seconds=2),
        "Trial Started",
        {
            "plan": trial_plan.product.name,
            "trial_days": trial_days,
            "trial_type": trial_type,
            "trial_end": trial_end.isoformat(),
        },
    )
    actions = _trial_actions(
        rng, trial_days * 24.0, project_early=project_early, invites=invites, habit=habit, teammates=employees - 1
    )
    for hours, name in actions:
        timeline.track(signed_up + hours_span(hours), name)
    # Everyday use during the trial: more visits for engaged trials, front-loaded like real trials.
    visits = rng.randint(7, 13) if habit else rng.randint(4, 8) if (project_early or invites) else rng.randint(1, 5)
    for _ in range(round(visits * (1.5 if trial_days > 14 else 1.0))):
        timeline.session(signed_up + hours_span(max(0.05, trial_days * 24 * rng.random() ** 1.4 - rng.uniform(0, 3))))

    subscription = Subscription(
        stripe_subscription_id=random_token(world, STRIPE_SUBSCRIPTION_PREFIX),
        customer=owner,
        plan=trial_plan,
        status=Subscription.Status.TRIALING,
        started_at=signed_up,
        trial_start=signed_up,
        trial_end=trial_end,
        current_period_start=signed_up,
        current_period_end=trial_end,
        stripe_state_at=signed_up,
        metadata={"trial_type": trial_type, "demo": True},
    )
    world.subscriptions.append(subscription)

    # After the trial: paid (with later use, perhaps a cancellation), or lapsed (a few stay on the free plan).
    active_until: datetime | None = None  # until when teammates can still join and use the product
    if converts:
        for name in ("Pricing", "Billing"):
            timeline.page(trial_end - hours_span(rng.uniform(2, 60)), name)
        seats_used = 1 + sum(1 for _, name in actions if name == "Teammate Invited")
        ended_at = _convert(world, subscription, signup, seats_used=seats_used, fit=fit)
        timeline.weekly_usage(
            trial_end,
            ended_at or world.now,
            sessions_per_week=(1, 3, 4, 2, 1),
            fade_from=subscription.canceled_at - timedelta(days=28) if subscription.canceled_at else None,
            extra=(
                ("Report Generated", 0.35),
                ("Project Created", 0.1),
                ("Integration Connected", 0.04),
                ("Teammate Invited", 0.05),
            ),
        )
        active_until = ended_at or world.now
    elif trial_end <= world.now:
        subscription.status = Subscription.Status.CANCELED
        subscription.canceled_at = subscription.ended_at = subscription.stripe_state_at = trial_end
        active_until = trial_end
        if rng.random() < 0.15:
            _free_fallback(world, owner, trial_end)
            timeline.weekly_usage(trial_end, world.now, sessions_per_week=(5, 2), extra=(("Report Generated", 0.1),))
    timeline.commit()
    world.trials.append(
        PlannedTrial(
            subscription=subscription,
            events=timeline.events,
            trial_start=signed_up,
            trial_end=trial_end,
            converted=converts,
        )
    )
    if signup.account is not None:
        invited = sorted(event.timestamp for event in timeline.events if event.name == "Teammate Invited")
        simulate_teammates(world, owner, invited, trial_end=trial_end, active_until=active_until, limit=limit)


def _trial_actions(
    rng: random.Random,
    trial_hours: float,
    *,
    project_early: bool,
    invites: bool,
    habit: bool,
    teammates: int,
) -> list[tuple[float, str]]:
    """High-intent actions of a trial as (hours since signup, event), guaranteeing its activation and habit flags.

    - project_early: the first "Project Created" is inside 72 h, otherwise it is later or never;
    - invites: at least one "Teammate Invited" inside the trial, otherwise none at all;
    - habit: at least 3 high-intent actions in the first 7 days, otherwise at most 2.
    Reports only follow a project, as they would in the product.
    """
    week = HABIT_WINDOW.total_seconds() / 3600
    early = ACTIVATION_WINDOW.total_seconds() / 3600
    first_project: float | None = None
    if project_early:
        first_project = rng.uniform(0.2, early - 0.5)
    elif rng.random() < 0.5:
        first_project = rng.uniform(early + 1, trial_hours - 2)
    anchors: list[tuple[float, str]] = []  # the actions the flags depend on; never moved
    actions: list[tuple[float, str]] = []
    if first_project is not None:
        anchors.append((first_project, "Project Created"))
    if invites:
        low = first_project + 0.3 if first_project is not None and first_project < week - 8 else 1.0
        high = week - 1 if habit else trial_hours - 1
        first_invite = rng.uniform(low, max(low + 1, high))
        anchors.append((first_invite, "Teammate Invited"))
        more = rng.choices((0, 1, 2, 3, 4, 6), weights=(3, 4, 3, 2, 1, 1))[0] if teammates > 0 else 0
        for _ in range(min(more, teammates - 1)):
            actions.append((min(trial_hours - 0.5, first_invite + rng.uniform(0.05, 48)), "Teammate Invited"))
    for _ in range(rng.randint(3, 9) if habit else rng.randint(0, 4)):
        moment = rng.uniform(1, trial_hours - 1)
        name = rng.choices(("Report Generated", "Integration Connected", "Project Created"), weights=(5, 2, 2))[0]
        if name != "Integration Connected" and (first_project is None or moment <= first_project):
            name = "Integration Connected"
        actions.append((moment, name))
    if habit:
        while sum(1 for hours, _ in anchors + actions if hours < week) < HABIT_MIN_ACTIONS:
            low = first_project + 0.2 if first_project is not None and first_project < week - 2 else 1.0
            moment = rng.uniform(low, week - 0.5)
            has_project = first_project is not None and first_project < moment
            actions.append((moment, "Report Generated" if has_project else "Integration Connected"))
    else:
        room = HABIT_MIN_ACTIONS - 1 - sum(1 for hours, _ in anchors if hours < week)
        kept: list[tuple[float, str]] = []
        for hours, name in sorted(actions):
            if hours < week:
                if room > 0:
                    room -= 1
                else:
                    hours = rng.uniform(week, trial_hours - 0.5)  # past the first week, still inside the trial
            kept.append((hours, name))
        actions = kept
    return sorted(anchors + actions)


def _convert(world: World, subscription: Subscription, signup: Signup, *, seats_used: int, fit: str) -> datetime | None:
    """Turn a trial into a paid subscription at trial end: plan, seats, add-ons, coupon, and later churn.

    Returns when the subscription ended (None while it runs). A cancellation requested before "now" either
    ended it already or leaves it active with cancel_at_period_end, as Stripe does.
    """
    rng = world.rng
    assert subscription.trial_end is not None
    anchor = subscription.trial_end
    employees = int(signup.account.traits["employees"]) if signup.account is not None else 1
    if signup.account is None:
        tier = rng.choices(("starter", "team"), weights=(75, 25))[0]
    elif employees >= 200:
        tier = rng.choices(("team", "business"), weights=(35, 65))[0]
    elif employees >= 20:
        tier = rng.choices(("starter", "team", "business"), weights=(20, 65, 15))[0]
    else:
        tier = rng.choices(("starter", "team"), weights=(55, 45))[0]
    yearly = rng.random() < (0.35 if tier == "business" else 0.2)
    months = 12 if yearly else 1
    plan = world.catalogue.plans[f"{tier}_{BillingInterval.YEAR if yearly else BillingInterval.MONTH}"]
    included = next(t.included_seats for t in TIERS if t.key == tier)
    seats = max(seats_used, rng.randint(1, max(1, min(60, employees // 8))) if signup.account is not None else 1)
    subscription.plan = plan
    subscription.status = Subscription.Status.ACTIVE
    subscription.metadata = {**subscription.metadata, "seats": max(seats, included)}
    invoice_cents = plan.amount_cents
    if seats > included:
        seat = world.catalogue.add_ons["seat_year" if yearly else "seat_month"]
        item = SubscriptionAddOn(subscription=subscription, add_on=seat, quantity=seats - included)
        item.stripe_item_id = random_token(world, STRIPE_ITEM_PREFIX)
        world.add_on_items.append(item)
        invoice_cents += seat.amount_cents * (seats - included)
    metered = not yearly and tier != "starter" and rng.random() < 0.25
    if metered:
        item = SubscriptionAddOn(subscription=subscription, add_on=world.catalogue.add_ons["api_calls_month"])
        item.stripe_item_id = random_token(world, STRIPE_ITEM_PREFIX)
        world.add_on_items.append(item)
    coupon = _coupon(rng, signup.signup_source)
    if coupon is not None:
        subscription.coupon_id = coupon.coupon_id
        subscription.discount_percent = coupon.percent
        subscription.discount_amount_cents = coupon.amount_cents
        subscription.discount_duration = coupon.duration

    # Churn: a cancellation request is drawn period by period (monthly hazard, or once a year).
    hazard = 0.15 if yearly else (0.08 if fit == "low" else 0.04) + (0.02 if tier == "starter" else 0.0)
    canceled_at: datetime | None = None
    index = 0
    while (start := add_months(anchor, index * months)) < world.now:
        if rng.random() < hazard:
            end = min(add_months(anchor, (index + 1) * months), world.now)
            canceled_at = start + (end - start) * rng.uniform(0.05, 0.95)
            break
        index += 1
    if canceled_at is not None:
        subscription.canceled_at = canceled_at
        ends = canceled_at if rng.random() < 0.2 else billing_period(anchor, months, canceled_at)[2]
        if ends <= world.now:
            subscription.status = Subscription.Status.CANCELED
            subscription.ended_at = ends
        else:
            subscription.cancel_at_period_end = True
    reference = subscription.ended_at - timedelta(seconds=1) if subscription.ended_at else world.now
    _, subscription.current_period_start, subscription.current_period_end = billing_period(anchor, months, reference)
    subscription.stripe_state_at = subscription.ended_at or max(
        subscription.current_period_start, canceled_at or anchor
    )
    world.billings.append(
        Billing(subscription=subscription, anchor=anchor, months=months, invoice_cents=invoice_cents, metered=metered)
    )
    return subscription.ended_at


def _coupon(rng: random.Random, signup_source: str) -> Coupon | None:
    """The coupon a new subscriber got, if any: partners bring their 20% forever, a few others a promotion."""
    roll = rng.random()
    if signup_source == "partner" and roll < 0.5:
        return COUPON_PARTNER
    if roll < 0.06:
        return COUPON_LOYALTY
    if roll < 0.16:
        return COUPON_WELCOME
    if roll < 0.20:
        return COUPON_LAUNCH
    return None


def _free_fallback(world: World, owner: Customer, trial_end: datetime) -> None:
    """A lapsed trial that stayed on the free plan: a second, active, zero-MRR subscription from trial end."""
    subscription = Subscription(
        stripe_subscription_id=random_token(world, STRIPE_SUBSCRIPTION_PREFIX),
        customer=owner,
        plan=world.catalogue.plans["free_month"],
        status=Subscription.Status.ACTIVE,
        started_at=trial_end,
        stripe_state_at=trial_end,
        metadata={"demo": True},
    )
    _, subscription.current_period_start, subscription.current_period_end = billing_period(trial_end, 1, world.now)
    world.subscriptions.append(subscription)
    world.free_fallbacks.add(id(owner))
