"""Seeding, finding and deleting the demo data set (`manage.py seed_demo`)."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audiences.models import Account, Customer, Event, Source
from audiences.services import source_create
from config.demo.effects import plant_effects
from config.demo.plan import Catalogue, ConversionRate, DemoSummary, World, signup_day_cum_weights
from config.demo.trial_simulation import simulate
from config.demo.vocabulary import (
    ACTIVATION_WINDOW,
    API_CALLS_UNIT_CENTS,
    BATCH_SIZE,
    DEFAULT_CUSTOMERS,
    DEFAULT_SEED,
    DEMO_SOURCE_NAME,
    GROUP_ID_PREFIX,
    HABIT_MIN_ACTIONS,
    HABIT_WINDOW,
    HIGH_INTENT_EVENTS,
    MIN_CUSTOMERS,
    SEAT_MONTHLY_CENTS,
    SEAT_YEARLY_CENTS,
    STRIPE_PRICE_PREFIX,
    STRIPE_PRODUCT_PREFIX,
    TIERS,
    USER_ID_PREFIX,
)
from config.demo.writing import counts_of, cyclic_gc_paused, status_counts, world_write
from integrations.stripe.models import (
    AddOn,
    BillingInterval,
    Plan,
    Product,
    RecurringPrice,
    Subscription,
    SubscriptionAddOn,
)
from trials.plays.demo import demo_alerts


def demo_now() -> datetime:
    """Today at midnight UTC: the fixed "now" the data set is built against, so a seed is reproducible all day."""
    return timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def demo_data_exists() -> bool:
    """Whether any demo row is present; seeding refuses to run twice rather than duplicate or half-mix data sets."""
    return (
        Source.objects.filter(name=DEMO_SOURCE_NAME).exists()
        or Product.objects.filter(stripe_product_id__startswith=STRIPE_PRODUCT_PREFIX).exists()
        or Customer.objects.filter(user_id__startswith=USER_ID_PREFIX).exists()
        or Account.objects.filter(group_id__startswith=GROUP_ID_PREFIX).exists()
    )


@transaction.atomic
def demo_data_delete() -> dict[str, int]:
    """Delete every demo row (recognised by its id prefixes), leaving real data alone. Returns rows deleted per model.

    Customers go through Django's collector so rows other apps keep about them (memberships, alerts…) cascade too;
    events are removed first in one statement because they are the bulk of the data set.
    """
    deleted: Counter[str] = Counter()
    source = Source.objects.filter(name=DEMO_SOURCE_NAME).first()

    def tally(result: tuple[int, dict[str, int]]) -> None:
        deleted.update({label.rsplit(".", 1)[-1]: count for label, count in result[1].items() if count})

    if source is not None:
        tally(Event.objects.filter(source=source).delete())
    customers = Customer.objects.filter(user_id__startswith=USER_ID_PREFIX)
    subscriptions = Subscription.objects.filter(
        Q(customer__in=customers) | Q(plan__stripe_price_id__startswith=STRIPE_PRICE_PREFIX)
    )
    tally(
        SubscriptionAddOn.objects.filter(
            Q(subscription__in=subscriptions) | Q(add_on__stripe_price_id__startswith=STRIPE_PRICE_PREFIX)
        ).delete()
    )
    tally(subscriptions.delete())
    tally(customers.delete())
    tally(Account.objects.filter(group_id__startswith=GROUP_ID_PREFIX).delete())
    tally(AddOn.objects.filter(stripe_price_id__startswith=STRIPE_PRICE_PREFIX).delete())
    tally(Plan.objects.filter(stripe_price_id__startswith=STRIPE_PRICE_PREFIX).delete())
    tally(Product.objects.filter(stripe_product_id__startswith=STRIPE_PRODUCT_PREFIX).delete())
    if source is not None:
        tally(source.delete())
    return dict(deleted)


def demo_seed(
    *,
    customers: int = DEFAULT_CUSTOMERS,
    seed: int = DEFAULT_SEED,
    reset: bool = False,
    now: datetime | None = None,
    effect_trials: int = 0,
) -> DemoSummary:
    """Build the demo data set once: `customers` people who signed up over the last 120 days, with everything else.

    Refuses (returns `created=False`) when demo data already exists, unless `reset` deletes it first, so running
    the command twice never doubles the data. `now` defaults to today at midnight UTC; tests pin it.
    `effect_trials` adds that many extra ended trials carrying known effects (config.demo.effects).
    """
    if customers < MIN_CUSTOMERS:
        raise ValueError(f"customers must be at least {MIN_CUSTOMERS} (got {customers}).")
    started = time.perf_counter()
    moment = now or demo_now()
    with transaction.atomic():
        deleted = demo_data_delete() if reset else {}
        if demo_data_exists():
            return DemoSummary(created=False, seed=seed, now=moment, elapsed_seconds=time.perf_counter() - started)
        # The write key and secret key are only shown here; the demo has no client that needs them, so they are
        # dropped: to try the tracking or session API, rotate them on Integrations → Sources (docs/offers.md).
        source, _write_key = source_create(name=DEMO_SOURCE_NAME, kind=Source.Kind.TRACKING_API)
        world = World(
            rng=random.Random(seed),
            now=moment,
            target_customers=customers,
            catalogue=_create_catalogue(),
            day_cum_weights=signup_day_cum_weights(moment),
        )
        with cyclic_gc_paused():
            simulate(world)
            world_write(world, source)
        if effect_trials:  # known effects for the measurement reports to recover (config.demo.effects)
            plant_effects(source=source, trials=effect_trials, seed=seed, now=moment)
        demo_alerts(user_id_prefix=USER_ID_PREFIX, now=moment)  # a few rep alerts from the default plays
    return DemoSummary(
        created=True,
        seed=seed,
        now=moment,
        counts=counts_of(world),
        subscriptions_by_status=status_counts(world.subscriptions),
        conversion=_conversion(world),
        deleted=deleted,
        elapsed_seconds=time.perf_counter() - started,
    )


def _create_catalogue() -> Catalogue:
    """Products, plans and add-ons a small analytics SaaS would sell; written first because subscriptions point at them.

    Flat tiers with included seats, monthly and yearly, plus a per-seat add-on and a metered API add-on, so
    every MRR rule (yearly ÷ 12, quantity, metered = 0, free = 0) has rows to act on.
    """
    products = [
        Product(
            stripe_product_id=f"{STRIPE_PRODUCT_PREFIX}{tier.key}",
            name=tier.name,
            description=tier.description,
            metadata={"included_seats": tier.included_seats, "demo": True},
        )
        for tier in TIERS
    ]
    products.append(
        Product(
            stripe_product_id=f"{STRIPE_PRODUCT_PREFIX}seats",
            name="Extra seats",
            description="Seats beyond those included in the plan.",
            metadata={"demo": True},
        )
    )
    products.append(
        Product(
            stripe_product_id=f"{STRIPE_PRODUCT_PREFIX}api_calls",
            name="API calls",
            description="Metered API usage, billed per 1,000 calls.",
            metadata={"demo": True},
        )
    )
    Product.objects.bulk_create(products, batch_size=BATCH_SIZE)
    by_key = {str(product.stripe_product_id).removeprefix(STRIPE_PRODUCT_PREFIX): product for product in products}

    plans: dict[str, Plan] = {}
    for tier in TIERS:
        intervals = [(BillingInterval.MONTH, tier.monthly_cents)]
        if tier.key != "free":
            intervals.append((BillingInterval.YEAR, tier.yearly_cents))
        for interval, amount in intervals:
            plans[f"{tier.key}_{interval}"] = Plan(
                stripe_price_id=f"{STRIPE_PRICE_PREFIX}{tier.key}_{interval}ly",
                name=f"{tier.name} ({interval}ly)",
                amount_cents=amount,
                currency="usd",
                interval=interval,
                product=by_key[tier.key],
            )
    Plan.objects.bulk_create(list(plans.values()), batch_size=BATCH_SIZE)

    add_ons = {
        "seat_month": AddOn(
            stripe_price_id=f"{STRIPE_PRICE_PREFIX}seat_monthly",
            name="Extra seat (monthly)",
            amount_cents=SEAT_MONTHLY_CENTS,
            interval=BillingInterval.MONTH,
            product=by_key["seats"],
        ),
        "seat_year": AddOn(
            stripe_price_id=f"{STRIPE_PRICE_PREFIX}seat_yearly",
            name="Extra seat (yearly)",
            amount_cents=SEAT_YEARLY_CENTS,
            interval=BillingInterval.YEAR,
            product=by_key["seats"],
        ),
        "api_calls_month": AddOn(
            stripe_price_id=f"{STRIPE_PRICE_PREFIX}api_calls_metered",
            name="API calls (per 1,000, metered)",
            amount_cents=API_CALLS_UNIT_CENTS,
            interval=BillingInterval.MONTH,
            usage_type=RecurringPrice.UsageType.METERED,
            product=by_key["api_calls"],
        ),
    }
    AddOn.objects.bulk_create(list(add_ons.values()), batch_size=BATCH_SIZE)
    return Catalogue(products=products, plans=plans, add_ons=add_ons)


def trial_behaviour(
    events: Sequence[tuple[str, datetime]], trial_start: datetime, trial_end: datetime
) -> tuple[bool, bool]:
    """(activated, habit) for one trial from its owner's (event name, timestamp) pairs — the data set's definitions.

    Activated: "Project Created" within 3 days of the trial start AND "Teammate Invited" during the trial.
    Habit: at least 3 high-intent actions (project, invite, report, integration) in the first 7 days.
    """
    project_early = any(
        name == "Project Created" and trial_start <= moment < trial_start + ACTIVATION_WINDOW for name, moment in events
    )
    invited = any(name == "Teammate Invited" and trial_start <= moment < trial_end for name, moment in events)
    habit_end = trial_start + HABIT_WINDOW
    high_intent = sum(1 for name, moment in events if name in HIGH_INTENT_EVENTS and trial_start <= moment < habit_end)
    return project_early and invited, high_intent >= HABIT_MIN_ACTIONS


def _conversion(world: World) -> dict[str, ConversionRate]:
    """Conversion of finished trials by activation and habit, measured on the events as written."""
    groups: dict[str, list[int]] = {key: [0, 0] for key in ("all", "activated", "not activated", "habit", "no habit")}
    for trial in world.trials:
        if trial.trial_end > world.now:
            continue
        activated, habit = trial_behaviour(
            [(event.name, event.timestamp) for event in trial.events if event.type == Event.Type.TRACK],
            trial.trial_start,
            trial.trial_end,
        )
        for key in ("all", "activated" if activated else "not activated", "habit" if habit else "no habit"):
            groups[key][0] += 1
            groups[key][1] += int(trial.converted)
    return {key: ConversionRate(trials=total, converted=won) for key, (total, won) in groups.items()}
