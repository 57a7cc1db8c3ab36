"""The demo data set behind `manage.py seed_demo`: a SaaS trial funnel realistic enough to explore every screen.

Why it is shaped this way: segments, plays and conversion analytics are only convincing on data in which
something is *true*. Here conversion depends on activation and habit the way the trial-to-paid loop says it
should: trials that create a project within 3 days AND invite a teammate convert at about 45%, the others at
about 8%, and trials with at least 3 high-intent actions in their first 7 days convert more on either side.
The activation-event analysis should rediscover the rule the generator used.

Everything is drawn from one `random.Random(seed)` against a fixed "now" (today, midnight UTC), so a seed gives
the same data set all day long. Rows are planned in memory first, then written with bulk_create in one
transaction: a few thousand trials take seconds, on SQLite as on PostgreSQL.

Demo rows are recognisable by their ids, which is what `demo_data_delete` (`--reset`) relies on: the source named
"Demo web app", Stripe ids `prod_demo_…`, `price_demo_…`, `cus_demo_…`, `sub_demo_…`, `si_demo_…`, user ids
`usr_demo_…` and group ids `org_demo_…`. Company emails use the reserved `.example` domain so nothing can be
delivered to them; free-mail and `.edu` addresses are kept because fit scoring needs them.
"""

from __future__ import annotations

import calendar
import gc
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import accumulate, islice
from typing import Any, NamedTuple

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audiences.models import Account, AnonymousId, Customer, Event, Source
from audiences.services import source_create
from config.demo_effects import plant_effects
from trials.models import AddOn, BillingInterval, Plan, Product, RecurringPrice, Subscription, SubscriptionAddOn
from trials.play_demo import demo_alerts
from trials.services import conversion, subscription_mrr_amount

DEMO_SOURCE_NAME = "Demo web app"
DEFAULT_CUSTOMERS = 3000
DEFAULT_SEED = 42
MIN_CUSTOMERS = 100  # below this the rarer statuses and the activation effect are left to chance
BATCH_SIZE = 1000

USER_ID_PREFIX = "usr_demo_"
GROUP_ID_PREFIX = "org_demo_"
STRIPE_CUSTOMER_PREFIX = "cus_demo_"
STRIPE_SUBSCRIPTION_PREFIX = "sub_demo_"
STRIPE_ITEM_PREFIX = "si_demo_"
STRIPE_PRODUCT_PREFIX = "prod_demo_"
STRIPE_PRICE_PREFIX = "price_demo_"

SIGNUP_WINDOW_DAYS = 120
ACTIVATION_WINDOW = timedelta(days=3)
HABIT_WINDOW = timedelta(days=7)
HABIT_MIN_ACTIONS = 3
HIGH_INTENT_EVENTS = frozenset({"Project Created", "Teammate Invited", "Report Generated", "Integration Connected"})
# Statuses of a trial subscription that has paid at least one invoice after its trial.
PAID_STATUSES = frozenset({Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE, Subscription.Status.UNPAID})

APP_URL = "https://app.demo-saas.example"
SITE_URL = "https://www.demo-saas.example"

# --- vocabulary ---------------------------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    """Split a block of whitespace-separated words: long name lists stay readable and diff-friendly."""
    return tuple(text.split())


FIRST_NAMES = _words(
    """
    Olivia Liam Emma Noah Ava Mateo Sofia Lucas Mia Ethan Amara Kenji Priya Arjun Chloe Diego Fatima Omar Hannah
    Jonas Leila Marco Nina Oscar Rosa Samuel Tara Victor Yara Zoe Aisha Ben Carmen Daniel Elena Felix Grace Hugo
    Ines Jack Kira Leo Maya Nadia Pablo Quinn Ravi Sara Tom Uma Wei Xavier Yusuf Anna Chen Dmitri Eva Gabriel Helena
    Isaac Julia Kofi
    """
)
LAST_NAMES = _words(
    """
    Smith Garcia Chen Patel Kim Nguyen Muller Rossi Silva Johnson Okafor Haddad Tanaka Kowalski Dubois Hansen
    Ivanova Jensen Lopez Martin Novak Olsen Park Quintero Reyes Schmidt Torres Ueda Varga Weber Yilmaz Zhang
    Anderson Brown Costa Davis Evans Fischer Gomez Hughes Ito Khan Larsen Mendes Nakamura Oliveira Price Ramirez
    Sato Thomas Vogel Walker Young Bauer Castillo Moreau
    """
)
# Title -> role family (what fit rules and the call-prep brief read).
TITLES: dict[str, str] = {
    "Founder": "executive",
    "CEO": "executive",
    "CTO": "executive",
    "VP Engineering": "engineering",
    "Engineering Manager": "engineering",
    "Software Engineer": "engineering",
    "Product Manager": "product",
    "Head of Product": "product",
    "Head of Growth": "marketing",
    "Marketing Manager": "marketing",
    "Data Analyst": "data",
    "Head of Data": "data",
    "Operations Manager": "operations",
    "Customer Success Lead": "operations",
    "Designer": "design",
    "Consultant": "other",
}
TITLE_WEIGHTS = (4, 3, 2, 2, 4, 8, 6, 2, 3, 4, 6, 2, 3, 2, 3, 3)
DECISION_ROLES = frozenset({"executive", "engineering", "product", "data"})
EDU_TITLES = {"Student": "student", "Researcher": "academic", "Professor": "academic", "Lab Manager": "academic"}

USE_CASES = (
    "Product analytics",
    "Marketing reporting",
    "Client reporting",
    "Internal dashboards",
    "Data exploration",
    "Just exploring",
)
USE_CASE_WEIGHTS = (26, 18, 12, 20, 12, 12)
SIGNUP_SOURCES = ("organic", "paid", "referral", "partner")
SIGNUP_SOURCE_WEIGHTS = (45, 25, 18, 12)

INDUSTRIES: dict[str, str] = {  # industry -> word used in company names
    "SaaS": "Software",
    "Fintech": "Financial",
    "E-commerce": "Commerce",
    "Healthcare": "Health",
    "Education": "Learning",
    "Agency": "Studio",
    "Manufacturing": "Industries",
    "Media": "Media",
    "Nonprofit": "Foundation",
    "Logistics": "Logistics",
    "Real estate": "Properties",
}
INDUSTRY_WEIGHTS = (22, 10, 12, 8, 5, 10, 7, 6, 4, 8, 4)
TARGET_INDUSTRIES = frozenset({"SaaS", "Fintech", "E-commerce", "Media"})
COMPANY_PREFIXES = _words(
    """
    North Blue Bright Silver Iron Cedar Harbor Summit Maple Granite Pixel Quantum Lumen Nimbus Atlas Vertex Orbit
    Copper Falcon Willow Beacon Kinetic Clear Open True Swift Red Oak Pine Stone Sun River
    """
)
COMPANY_SUFFIXES = _words(
    """
    wind path leaf point line field works labs stack loop bridge forge scale shift wave grid base flow craft ly
    """
)
# Company size buckets: (label, lowest, highest employees), with how often they sign up.
COMPANY_SIZES = (
    ("1-10", 1, 10),
    ("11-50", 11, 50),
    ("51-200", 51, 200),
    ("201-1000", 201, 1000),
    ("1000+", 1001, 8000),
)
COMPANY_SIZE_WEIGHTS = (30, 32, 20, 12, 6)
COUNTRIES = ("US", "GB", "DE", "CA", "FR", "AU", "NL", "IN", "BR", "ES")
COUNTRY_WEIGHTS = (50, 10, 8, 7, 5, 5, 4, 5, 3, 3)
FREE_MAIL_DOMAINS = ("gmail.com", "gmail.com", "gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com")
UNIVERSITIES = _words(
    """
    hollowbrook stonereach fairhollow quillmont brackenridge-state elmstead marrowfield coldwater-tech westmarch
    larkspur-college
    """
)

APP_PAGES = ("Dashboard", "Projects", "Reports", "Integrations", "Settings", "Team", "Docs")
APP_PAGE_WEIGHTS = (30, 22, 16, 8, 6, 6, 12)
DASHBOARDS = ("Overview", "Acquisition", "Retention", "Revenue", "Custom")
REPORT_TYPES = ("funnel", "cohort", "retention", "revenue", "custom")
INTEGRATIONS = ("Slack", "Stripe", "HubSpot", "Postgres", "Google Sheets", "Salesforce", "Snowflake")
PROJECT_TEMPLATES = ("blank", "sample data", "template")
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 11, 11, 9, 10, 11, 10, 9, 7, 5, 4, 3, 2, 2, 1)

# Conversion probability of an opt-in trial by (activated, habit); fit and signup source scale it.
CONVERSION_BASE: dict[tuple[bool, bool], float] = {
    (True, True): 0.43,
    (True, False): 0.26,
    (False, True): 0.14,
    (False, False): 0.045,
}
FIT_CONVERSION = {"high": 1.15, "medium": 1.0, "low": 0.75}
SOURCE_CONVERSION = {"organic": 1.0, "paid": 0.85, "referral": 1.15, "partner": 1.2}
FIT_ENGAGEMENT = {"high": 1.2, "medium": 1.0, "low": 0.75}


@dataclass(frozen=True)
class _Tier:
    key: str
    name: str
    monthly_cents: int
    yearly_cents: int
    included_seats: int
    description: str


TIERS = (
    _Tier("free", "Free", 0, 0, 1, "One seat, three dashboards, community support."),
    _Tier("starter", "Starter", 2900, 29000, 1, "For one analyst: unlimited dashboards and reports."),
    _Tier("team", "Team", 9900, 99000, 3, "Shared projects, three seats included, integrations."),
    _Tier("business", "Business", 29900, 299000, 10, "Ten seats, SSO, audit log and priority support."),
)
SEAT_MONTHLY_CENTS = 1200
SEAT_YEARLY_CENTS = 12000
API_CALLS_UNIT_CENTS = 100  # per 1,000 API calls, metered


@dataclass(frozen=True)
class _Coupon:
    coupon_id: str
    percent: Decimal | None
    amount_cents: int | None
    duration: str


COUPON_PARTNER = _Coupon("PARTNER20", Decimal("20.00"), None, Subscription.DiscountDuration.FOREVER)
COUPON_LOYALTY = _Coupon("LOYALTY15", Decimal("15.00"), None, Subscription.DiscountDuration.FOREVER)
COUPON_WELCOME = _Coupon("WELCOME50", None, 5000, Subscription.DiscountDuration.ONCE)
COUPON_LAUNCH = _Coupon("LAUNCH25", Decimal("25.00"), None, Subscription.DiscountDuration.REPEATING)
REPEATING_MONTHS = 3


# --- results ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversionRate:
    """Finished trials in a group and how many of them converted to paid."""

    trials: int
    converted: int

    @property
    def rate(self) -> float:
        """Share converted, 0.0 for an empty group (so a summary never divides by zero)."""
        return self.converted / self.trials if self.trials else 0.0


@dataclass(frozen=True)
class DemoSummary:
    """What a seeding run did: enough for the command to print and for tests to check."""

    created: bool
    seed: int
    now: datetime
    counts: dict[str, int] = field(default_factory=dict)
    subscriptions_by_status: dict[str, int] = field(default_factory=dict)
    conversion: dict[str, ConversionRate] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0


# --- the in-memory plan -------------------------------------------------------------------------------------------


class _PlannedEvent(NamedTuple):
    """An event waiting to be written: a light tuple, as there are tens of thousands of them."""

    timestamp: datetime
    customer: Customer
    type: str
    name: str
    user_id: str
    anonymous_id: str
    properties: dict[str, Any]
    context: dict[str, Any]
    message_id: str


@dataclass
class _Billing:
    """A paid subscription's invoicing facts, kept until statuses are final so lifetime value can be counted."""

    subscription: Subscription
    anchor: datetime
    months: int
    invoice_cents: int
    metered: bool
    failed_invoices: int = 0


@dataclass
class _Trial:
    """A trial subscription with its owner's events, to measure activation exactly as analytics will."""

    subscription: Subscription
    events: list[_PlannedEvent]
    trial_start: datetime
    trial_end: datetime
    converted: bool


@dataclass
class _Catalogue:
    """The stored products, and plans and add-ons by key (e.g. "team_month", "seat_year")."""

    products: list[Product]
    plans: dict[str, Plan]
    add_ons: dict[str, AddOn]


@dataclass
class _World:
    """Everything planned so far; written to the database only once the whole data set is known."""

    rng: random.Random
    now: datetime
    target_customers: int
    catalogue: _Catalogue
    day_cum_weights: list[float]
    accounts: list[Account] = field(default_factory=list)
    customers: list[Customer] = field(default_factory=list)
    signed_up_at: dict[int, datetime] = field(default_factory=dict)
    anonymous_ids: list[AnonymousId] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    add_on_items: list[SubscriptionAddOn] = field(default_factory=list)
    billings: list[_Billing] = field(default_factory=list)
    trials: list[_Trial] = field(default_factory=list)
    events: list[_PlannedEvent] = field(default_factory=list)
    free_fallbacks: set[int] = field(default_factory=set)
    used_tokens: set[str] = field(default_factory=set)
    used_domains: set[str] = field(default_factory=set)
    used_emails: set[str] = field(default_factory=set)


# --- public entry points ------------------------------------------------------------------------------------------


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
    `effect_trials` adds that many extra ended trials carrying known effects (config.demo_effects).
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
        world = _World(
            rng=random.Random(seed),
            now=moment,
            target_customers=customers,
            catalogue=_create_catalogue(),
            day_cum_weights=_signup_day_cum_weights(moment),
        )
        with _cyclic_gc_paused():
            _simulate(world)
            _write(world, source)
        if effect_trials:  # known effects for the measurement reports to recover (config.demo_effects)
            plant_effects(source=source, trials=effect_trials, seed=seed, now=moment)
        demo_alerts(user_id_prefix=USER_ID_PREFIX, now=moment)  # a few rep alerts from the default plays
    return DemoSummary(
        created=True,
        seed=seed,
        now=moment,
        counts=_counts(world),
        subscriptions_by_status=_status_counts(world.subscriptions),
        conversion=_conversion(world),
        deleted=deleted,
        elapsed_seconds=time.perf_counter() - started,
    )


# --- catalogue ----------------------------------------------------------------------------------------------------


def _create_catalogue() -> _Catalogue:
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
    return _Catalogue(products=products, plans=plans, add_ons=add_ons)


# --- small helpers ------------------------------------------------------------------------------------------------


def _signup_day_cum_weights(now: datetime) -> list[float]:
    """Cumulative weights for "signed up N days ago" (1…120): a growing product, quieter at weekends."""
    weights = []
    for days_ago in range(1, SIGNUP_WINDOW_DAYS + 1):
        growth = 1.0 + 0.6 * (1 - days_ago / SIGNUP_WINDOW_DAYS)
        weekend = 0.55 if (now - timedelta(days=days_ago)).weekday() >= 5 else 1.0
        weights.append(growth * weekend)
    return list(accumulate(weights))


def _signup_time(world: _World) -> datetime:
    """A signup moment in the window, mostly during working hours."""
    rng = world.rng
    days_ago = rng.choices(range(1, SIGNUP_WINDOW_DAYS + 1), cum_weights=world.day_cum_weights)[0]
    hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
    return (
        world.now
        - timedelta(days=days_ago)
        + timedelta(hours=hour, minutes=rng.randrange(60), seconds=rng.randrange(60))
    )


def _uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from the seeded generator, so message and anonymous ids are reproducible."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _token(world: _World, prefix: str, length: int = 14) -> str:
    """A Stripe-looking id (`prefix` + random alphanumerics), unique within the data set."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    while True:
        token = prefix + "".join(world.rng.choices(alphabet, k=length))
        if token not in world.used_tokens:
            world.used_tokens.add(token)
            return token


def _add_months(moment: datetime, months: int) -> datetime:
    """Calendar month arithmetic as Stripe bills it (the 31st becomes the last day of a shorter month)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def _period(anchor: datetime, months: int, at: datetime) -> tuple[int, datetime, datetime]:
    """The billing period containing `at` for a subscription billed every `months` from `anchor`: index, start, end."""
    index = 0
    while _add_months(anchor, (index + 1) * months) <= at:
        index += 1
    return index, _add_months(anchor, index * months), _add_months(anchor, (index + 1) * months)


def _hours(value: float) -> timedelta:
    """Shorthand: most timing in the simulation is expressed in hours since the trial started."""
    return timedelta(hours=value)


def _high_intent_properties(rng: random.Random, name: str) -> dict[str, Any]:
    """Plausible properties for a high-intent action, so property filters in segments have something to match."""
    if name == "Project Created":
        return {"project_id": f"prj_{rng.randrange(16**8):08x}", "template": rng.choice(PROJECT_TEMPLATES)}
    if name == "Teammate Invited":
        role = rng.choices(("member", "admin"), weights=(4, 1))[0]
        return {"invitee_role": role, "method": rng.choice(("email", "link"))}
    if name == "Report Generated":
        output = rng.choices(("web", "pdf", "csv"), weights=(6, 2, 2))[0]
        return {"report_type": rng.choice(REPORT_TYPES), "format": output}
    if name == "Integration Connected":
        return {"integration": rng.choice(INTEGRATIONS)}
    return {}


# --- one customer's events ----------------------------------------------------------------------------------------


@dataclass
class _Timeline:
    """One customer's events while they are planned: the browsers they use and the context their calls carry.

    Events at or after "now" are dropped here, so the simulation can run a customer's life past today freely.
    """

    world: _World
    customer: Customer
    browsers: list[str]
    context: dict[str, Any]
    events: list[_PlannedEvent] = field(default_factory=list)

    def add(
        self,
        when: datetime,
        type_: str,
        name: str = "",
        properties: dict[str, Any] | None = None,
        *,
        browser: str | None = None,
        identified: bool = True,
        context: dict[str, Any] | None = None,
    ) -> None:
        """Plan one call; `browser` defaults to one of the customer's anonymous ids, as analytics.js sends both."""
        if when >= self.world.now:
            return
        self.events.append(
            _PlannedEvent(
                timestamp=when,
                customer=self.customer,
                type=type_,
                name=name,
                user_id=str(self.customer.user_id) if identified else "",
                anonymous_id=self.browser() if browser is None else browser,
                properties=properties or {},
                context=self.context if context is None else context,
                message_id=_uuid(self.world.rng),
            )
        )

    def browser(self) -> str:
        """The anonymous id of the device used for a visit (most people have one, some a second one)."""
        return self.browsers[0] if len(self.browsers) == 1 else self.world.rng.choice(self.browsers)

    def track(self, when: datetime, name: str, properties: dict[str, Any] | None = None) -> None:
        """Plan a track call; high-intent actions get their usual properties unless given."""
        if properties is None:
            properties = _high_intent_properties(self.world.rng, name)
        self.add(when, Event.Type.TRACK, name, properties)

    def page(self, when: datetime, name: str, *, site: str = APP_URL, referrer: str = "", **options: Any) -> None:
        """Plan a page view with the properties analytics.js sends (path, url, title, referrer)."""
        path = "/" + name.lower().replace(" ", "-") if name != "Home" else "/"
        properties: dict[str, Any] = {"path": path, "url": site + path, "title": f"{name} · Demo SaaS"}
        if referrer:
            properties["referrer"] = referrer
        self.add(when, Event.Type.PAGE, name, properties, **options)

    def signup(
        self,
        signed_up: datetime,
        *,
        landing_pages: Sequence[str],
        referrer: str,
        campaign: dict[str, str] | None,
        signed_up_properties: dict[str, Any],
    ) -> None:
        """Anonymous visits before signup, then identify (with traits), Signed Up, and group for account members."""
        rng = self.world.rng
        first_browser = self.browsers[0]
        if first_browser:
            lead_minutes = 60 * 24 * (5 if len(landing_pages) > 1 else 0.2)
            first_visit = signed_up - timedelta(minutes=rng.uniform(3, lead_minutes))
            step = (signed_up - first_visit) / len(landing_pages)
            for index, name in enumerate(landing_pages):
                context = {**self.context, "campaign": campaign} if index == 0 and campaign else self.context
                self.page(
                    first_visit + step * index,
                    name,
                    site=SITE_URL,
                    referrer=referrer if index == 0 else "",
                    browser=first_browser,
                    identified=False,
                    context=context,
                )
        traits = {"email": self.customer.email, "name": self.customer.name, **self.customer.traits}
        self.add(signed_up, Event.Type.IDENTIFY, "", traits, browser=first_browser)
        self.add(
            signed_up + timedelta(seconds=1), Event.Type.TRACK, "Signed Up", signed_up_properties, browser=first_browser
        )
        account = self.customer.account
        if account is not None:
            self.add(
                signed_up + timedelta(seconds=3), Event.Type.GROUP, "", dict(account.traits), browser=first_browser
            )

    def session(self, start: datetime, extra: Sequence[tuple[str, float]] = ()) -> None:
        """One visit to the app: a few page views and dashboard views, plus `extra` (event, probability) actions."""
        rng = self.world.rng
        browser = self.browser()
        when = start
        for _ in range(rng.choices((1, 2, 3), weights=(4, 4, 2))[0]):
            self.page(when, rng.choices(APP_PAGES, weights=APP_PAGE_WEIGHTS)[0], browser=browser)
            when += timedelta(seconds=rng.uniform(20, 600))
        for _ in range(rng.choices((0, 1, 2), weights=(3, 4, 2))[0]):
            self.add(when, Event.Type.TRACK, "Dashboard Viewed", {"dashboard": rng.choice(DASHBOARDS)}, browser=browser)
            when += timedelta(seconds=rng.uniform(20, 900))
        for name, probability in extra:
            if rng.random() < probability:
                self.add(when, Event.Type.TRACK, name, _high_intent_properties(rng, name), browser=browser)
                when += timedelta(seconds=rng.uniform(30, 900))

    def weekly_usage(
        self,
        start: datetime,
        end: datetime,
        *,
        sessions_per_week: Sequence[int],
        extra: Sequence[tuple[str, float]],
        fade_from: datetime | None = None,
    ) -> None:
        """Use after the trial, or as a teammate: weights for 0, 1, 2… visits a week, fading before a cancellation."""
        rng = self.world.rng
        end = min(end, self.world.now)
        week = start
        while week < end:
            weights = sessions_per_week if fade_from is None or week < fade_from else (6, 3, 1)
            for _ in range(rng.choices(range(len(weights)), weights=weights)[0]):
                moment = week + timedelta(days=rng.uniform(0, 7))
                if moment < end:
                    self.session(moment, extra)
            week += timedelta(days=7)

    def commit(self) -> None:
        """Hand the planned events to the data set."""
        self.world.events.extend(self.events)


# --- people -------------------------------------------------------------------------------------------------------


def _new_account(world: _World, signed_up: datetime) -> Account:
    """A B2B company with firmographic traits and a unique `.example` domain (never a deliverable address)."""
    rng = world.rng
    industry = rng.choices(list(INDUSTRIES), weights=INDUSTRY_WEIGHTS)[0]
    size_label, low, high = rng.choices(COMPANY_SIZES, weights=COMPANY_SIZE_WEIGHTS)[0]
    employees = int(low + (high - low) * rng.random() ** 2)
    while True:
        stem = rng.choice(COMPANY_PREFIXES) + rng.choice(COMPANY_SUFFIXES)
        name = f"{stem} {INDUSTRIES[industry]}"
        domain = f"{stem.lower()}.example"
        if domain in world.used_domains:
            domain = f"{stem.lower()}{INDUSTRIES[industry].lower()}.example"
        if domain not in world.used_domains:
            break
    world.used_domains.add(domain)
    account = Account(
        group_id=_token(world, GROUP_ID_PREFIX, 10),
        name=name,
        domain=domain,
        traits={
            "name": name,
            "domain": domain,
            "industry": industry,
            "employees": employees,
            "company_size": size_label,
            "country": rng.choices(COUNTRIES, weights=COUNTRY_WEIGHTS)[0],
            "website": f"https://www.{domain}",
            "created_at": signed_up.isoformat(),
        },
    )
    world.accounts.append(account)
    world.signed_up_at[id(account)] = signed_up
    return account


def _email(world: _World, first: str, last: str, kind: str, domain: str) -> str:
    """A lowercased, unique email in the style people really use for each kind of address."""
    rng = world.rng
    first, last = first.lower(), last.lower()
    while True:
        if kind == "freemail":
            local = rng.choice((f"{first}.{last}{rng.randrange(10, 9999)}", f"{first}{last}{rng.randrange(1, 99)}"))
        elif kind == "edu":
            local = rng.choice((f"{first}.{last}", f"{first[0]}{last}{rng.randrange(1, 99)}"))
        else:
            local = rng.choices((f"{first}.{last}", first, f"{first[0]}{last}"), weights=(6, 2, 2))[0]
        email = f"{local}@{domain}"
        if email not in world.used_emails:
            world.used_emails.add(email)
            return email
        last = last + rng.choice("abcdefgh")  # a second jane.smith becomes jane.smitha… and tries again


@dataclass(frozen=True)
class _Signup:
    """What a person picked or brought at signup: the kind of address, their company, source and use case."""

    kind: str
    account: Account | None
    signed_up: datetime
    signup_source: str
    use_case: str


def _new_customer(world: _World, signup: _Signup, *, with_stripe: bool, invited_by: Customer | None = None) -> Customer:
    """One person who signed up: identities, traits picked at signup, consent; revenue fields are filled later."""
    rng = world.rng
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    if signup.kind == "edu":
        title = rng.choices(list(EDU_TITLES), weights=(6, 2, 1, 1))[0]
        role = EDU_TITLES[title]
        university = rng.choice(UNIVERSITIES)
        domain, company = f"{university}.edu", university.replace("-", " ").title() + " University"
    elif signup.kind == "freemail":
        title = rng.choices(list(TITLES), weights=TITLE_WEIGHTS)[0]
        role = TITLES[title]
        domain, company = rng.choice(FREE_MAIL_DOMAINS), rng.choice(("", "", "Freelance", "Self-employed"))
    else:
        assert signup.account is not None
        title = rng.choices(list(TITLES), weights=TITLE_WEIGHTS)[0]
        role = TITLES[title]
        domain, company = signup.account.domain, signup.account.name
    traits: dict[str, Any] = {
        "first_name": first,
        "last_name": last,
        "title": title,
        "role": role,
        "company": company,
        "use_case": signup.use_case,
        "signup_source": signup.signup_source,
        "created_at": signup.signed_up.isoformat(),
    }
    if invited_by is not None:
        traits["invited_by"] = invited_by.user_id
    consent: dict[str, bool] = {}
    if rng.random() < 0.04:
        consent["email"] = False
    if rng.random() < 0.02:
        consent["destinations"] = False
    customer = Customer(
        user_id=_token(world, USER_ID_PREFIX, 12),
        email=_email(world, first, last, signup.kind, domain),
        stripe_customer_id=_token(world, STRIPE_CUSTOMER_PREFIX) if with_stripe else None,
        name=f"{first} {last}",
        traits=traits,
        account=signup.account,
        consent=consent,
    )
    world.customers.append(customer)
    world.signed_up_at[id(customer)] = signup.signed_up
    return customer


def _timeline(world: _World, customer: Customer, *, browsers: int) -> _Timeline:
    """Start a customer's timeline with `browsers` anonymous ids (0: identified from the first call, no AnonymousId)."""
    ids = []
    for _ in range(browsers):
        value = _uuid(world.rng)
        world.anonymous_ids.append(AnonymousId(anonymous_id=value, customer=customer))
        ids.append(value)
    context: dict[str, Any] = {"library": {"name": "analytics.js", "version": "5.2.0"}}
    if customer.account is not None:
        context["groupId"] = customer.account.group_id
    return _Timeline(world=world, customer=customer, browsers=ids or [""], context=context)


def _fit_tier(signup: _Signup, role: str) -> str:
    """Firmographic fit as a rep would judge it: mid-size companies in target industries, decision makers."""
    if signup.kind != "company" or signup.account is None:
        return "low"
    employees = int(signup.account.traits["employees"])
    score = 2 if 11 <= employees <= 1000 else 1 if employees > 1000 else 0
    score += 1 if signup.account.traits["industry"] in TARGET_INDUSTRIES else 0
    score += 1 if role in DECISION_ROLES else 0
    return "high" if score >= 3 else "medium" if score >= 2 else "low"


def _acquisition(rng: random.Random, signup_source: str) -> tuple[dict[str, str] | None, str]:
    """The first touch that brought a signup: a UTM campaign for paid and partner, a referrer otherwise."""
    if signup_source == "paid":
        site, medium = rng.choice((("google", "cpc"), ("linkedin", "paid-social"), ("capterra", "cpc")))
        name = rng.choice(("brand-search", "competitor-keywords", "trial-q3", "retargeting"))
        return {"source": site, "medium": medium, "name": name}, f"https://www.{site}.com/"
    if signup_source == "partner":
        partner = rng.choice(("agencyhub", "cloudmarket", "dataguild"))
        return {"source": partner, "medium": "partner", "name": f"{partner}-listing"}, f"https://{partner}.example/"
    if signup_source == "referral":
        return None, rng.choice(("https://news.ycombinator.com/", "https://www.g2.com/", "https://blog.example/"))
    return None, rng.choice(("https://www.google.com/", "https://duckduckgo.com/", "https://www.bing.com/", ""))


# --- simulation ---------------------------------------------------------------------------------------------------


def _simulate(world: _World) -> None:
    """Plan the whole data set: trials (with the teammates they bring) up to the target size, a few checkout-only
    buyers, then the rarer Stripe states (past due, unpaid, paused…) and the revenue figures that depend on them."""
    direct_each = max(1, round(world.target_customers * 0.004))
    limit = world.target_customers - 2 * direct_each
    while len(world.customers) < limit:
        _simulate_trial(world, limit=limit)
    for _ in range(direct_each):
        _simulate_direct_checkout(world, expired=False)
        _simulate_direct_checkout(world, expired=True)
    _assign_rare_statuses(world)
    _finalise_revenue(world)
    _finalise_seen(world)


def _simulate_trial(world: _World, *, limit: int) -> None:
    """One trial signup end to end: who they are, what they did, whether they paid, and the teammates they brought.

    Behaviour is drawn first (activation, habit) and the events are laid out to satisfy exactly those flags;
    conversion then depends on the flags, so the truth is in the events, where analytics will look for it.
    """
    rng = world.rng
    kind = rng.choices(("company", "freemail", "edu"), weights=(76, 17, 7))[0]
    signed_up = _signup_time(world)
    signup = _Signup(
        kind=kind,
        account=_new_account(world, signed_up) if kind == "company" else None,
        signed_up=signed_up,
        signup_source=rng.choices(SIGNUP_SOURCES, weights=SIGNUP_SOURCE_WEIGHTS)[0],
        use_case=rng.choices(USE_CASES, weights=USE_CASE_WEIGHTS)[0],
    )
    owner = _new_customer(world, signup, with_stripe=True)
    employees = int(signup.account.traits["employees"]) if signup.account is not None else 1
    fit = _fit_tier(signup, str(owner.traits["role"]))

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

    timeline = _timeline(world, owner, browsers=rng.choices((0, 1, 2), weights=(10, 68, 22))[0])
    campaign, referrer = _acquisition(rng, signup.signup_source)
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
        timeline.track(signed_up + _hours(hours), name)
    # Everyday use during the trial: more visits for engaged trials, front-loaded like real trials.
    visits = rng.randint(7, 13) if habit else rng.randint(4, 8) if (project_early or invites) else rng.randint(1, 5)
    for _ in range(round(visits * (1.5 if trial_days > 14 else 1.0))):
        timeline.session(signed_up + _hours(max(0.05, trial_days * 24 * rng.random() ** 1.4 - rng.uniform(0, 3))))

    subscription = Subscription(
        stripe_subscription_id=_token(world, STRIPE_SUBSCRIPTION_PREFIX),
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
            timeline.page(trial_end - _hours(rng.uniform(2, 60)), name)
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
        _Trial(
            subscription=subscription,
            events=timeline.events,
            trial_start=signed_up,
            trial_end=trial_end,
            converted=converts,
        )
    )
    if signup.account is not None:
        invited = sorted(event.timestamp for event in timeline.events if event.name == "Teammate Invited")
        _simulate_teammates(world, owner, invited, trial_end=trial_end, active_until=active_until, limit=limit)


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


def _convert(
    world: _World, subscription: Subscription, signup: _Signup, *, seats_used: int, fit: str
) -> datetime | None:
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
        item.stripe_item_id = _token(world, STRIPE_ITEM_PREFIX)
        world.add_on_items.append(item)
        invoice_cents += seat.amount_cents * (seats - included)
    metered = not yearly and tier != "starter" and rng.random() < 0.25
    if metered:
        item = SubscriptionAddOn(subscription=subscription, add_on=world.catalogue.add_ons["api_calls_month"])
        item.stripe_item_id = _token(world, STRIPE_ITEM_PREFIX)
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
    while (start := _add_months(anchor, index * months)) < world.now:
        if rng.random() < hazard:
            end = min(_add_months(anchor, (index + 1) * months), world.now)
            canceled_at = start + (end - start) * rng.uniform(0.05, 0.95)
            break
        index += 1
    if canceled_at is not None:
        subscription.canceled_at = canceled_at
        ends = canceled_at if rng.random() < 0.2 else _period(anchor, months, canceled_at)[2]
        if ends <= world.now:
            subscription.status = Subscription.Status.CANCELED
            subscription.ended_at = ends
        else:
            subscription.cancel_at_period_end = True
    reference = subscription.ended_at - timedelta(seconds=1) if subscription.ended_at else world.now
    _, subscription.current_period_start, subscription.current_period_end = _period(anchor, months, reference)
    subscription.stripe_state_at = subscription.ended_at or max(
        subscription.current_period_start, canceled_at or anchor
    )
    world.billings.append(
        _Billing(subscription=subscription, anchor=anchor, months=months, invoice_cents=invoice_cents, metered=metered)
    )
    return subscription.ended_at


def _coupon(rng: random.Random, signup_source: str) -> _Coupon | None:
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


def _free_fallback(world: _World, owner: Customer, trial_end: datetime) -> None:
    """A lapsed trial that stayed on the free plan: a second, active, zero-MRR subscription from trial end."""
    subscription = Subscription(
        stripe_subscription_id=_token(world, STRIPE_SUBSCRIPTION_PREFIX),
        customer=owner,
        plan=world.catalogue.plans["free_month"],
        status=Subscription.Status.ACTIVE,
        started_at=trial_end,
        stripe_state_at=trial_end,
        metadata={"demo": True},
    )
    _, subscription.current_period_start, subscription.current_period_end = _period(trial_end, 1, world.now)
    world.subscriptions.append(subscription)
    world.free_fallbacks.add(id(owner))


def _simulate_teammates(
    world: _World,
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
        joined = moment + _hours(rng.uniform(0.1, 72))
        if joined >= min(world.now, usable_until):
            continue
        signup = _Signup(
            kind="company",
            account=owner.account,
            signed_up=joined,
            signup_source="invite",
            use_case=str(owner.traits["use_case"]),
        )
        teammate = _new_customer(world, signup, with_stripe=False, invited_by=owner)
        timeline = _timeline(world, teammate, browsers=1)
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


def _simulate_direct_checkout(world: _World, *, expired: bool) -> None:
    """A buyer who skipped the trial and whose first payment failed: `incomplete` (< 23 h) or `incomplete_expired`.

    Stripe expires an incomplete subscription after 23 hours, so the live ones are from the last day.
    """
    rng = world.rng
    signed_up = _signup_time(world) - timedelta(days=2) if expired else world.now - _hours(rng.uniform(1, 20))
    signup = _Signup(
        kind="company",
        account=_new_account(world, signed_up),
        signed_up=signed_up,
        signup_source=rng.choices(SIGNUP_SOURCES, weights=SIGNUP_SOURCE_WEIGHTS)[0],
        use_case=rng.choices(USE_CASES, weights=USE_CASE_WEIGHTS)[0],
    )
    customer = _new_customer(world, signup, with_stripe=True)
    plan = world.catalogue.plans[rng.choice(("starter_month", "team_month", "team_year"))]
    timeline = _timeline(world, customer, browsers=1)
    campaign, referrer = _acquisition(rng, signup.signup_source)
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
            stripe_subscription_id=_token(world, STRIPE_SUBSCRIPTION_PREFIX),
            customer=customer,
            plan=plan,
            status=Subscription.Status.INCOMPLETE_EXPIRED if expired else Subscription.Status.INCOMPLETE,
            started_at=signed_up,
            current_period_start=signed_up,
            current_period_end=_add_months(signed_up, 12 if plan.interval == BillingInterval.YEAR else 1),
            ended_at=expires if expired else None,
            stripe_state_at=expires if expired else signed_up,
            metadata={"demo": True},
        )
    )


def _assign_rare_statuses(world: _World) -> None:
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
    monthly = [billing for billing in running if billing.months == 1 and _period(billing.anchor, 1, now)[0] >= 1]
    older = [billing for billing in monthly if _period(billing.anchor, 1, now)[0] >= 2] or monthly
    unpaid = rng.sample(older, min(len(older), max(1, round(0.025 * len(running)))))
    chosen = {id(billing) for billing in unpaid}
    rest = [billing for billing in monthly if id(billing) not in chosen]
    past_due = rng.sample(rest, min(len(rest), max(1, round(0.06 * len(running)))))
    chosen.update(id(billing) for billing in past_due)
    for billings, status in ((unpaid, Subscription.Status.UNPAID), (past_due, Subscription.Status.PAST_DUE)):
        for billing in billings:
            index = _period(billing.anchor, 1, now)[0]
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


def _finalise_revenue(world: _World) -> None:
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


def _lifetime_value_cents(rng: random.Random, now: datetime, billing: _Billing) -> int:
    """What a paid subscription has paid so far: each started period's invoice, less failed ones and discounts."""
    subscription = billing.subscription
    end = subscription.ended_at or now
    started = 0
    while _add_months(billing.anchor, started * billing.months) < end:
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


def _finalise_seen(world: _World) -> None:
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


# --- writing ------------------------------------------------------------------------------------------------------


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while the data set is planned and written.

    The plan is about a million small long-lived objects; bulk_create allocates fast enough to trigger full
    collections that traverse all of them again and again (about a fifth of the run time). Nothing here creates
    reference cycles that need collecting, and the previous state is restored even on error.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of `items`, so large lists are turned into model objects one batch at a time."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _write(world: _World, source: Source) -> None:
    """Insert the planned data set with bulk_create, then MRR, which is computed from the stored rows.

    Rows are inserted in signup order (events in time order) so ids grow with time, as in a real installation;
    created_at stays the time of seeding, like any import, while signup times live in first_seen_at, the
    subscriptions' dates and the `created_at` trait.
    """
    world.accounts.sort(key=lambda account: world.signed_up_at[id(account)])
    world.customers.sort(key=lambda customer: world.signed_up_at[id(customer)])
    world.subscriptions.sort(key=lambda subscription: subscription.started_at)
    Account.objects.bulk_create(world.accounts, batch_size=BATCH_SIZE)
    Customer.objects.bulk_create(world.customers, batch_size=BATCH_SIZE)
    AnonymousId.objects.bulk_create(world.anonymous_ids, batch_size=BATCH_SIZE)
    Subscription.objects.bulk_create(world.subscriptions, batch_size=BATCH_SIZE)
    SubscriptionAddOn.objects.bulk_create(world.add_on_items, batch_size=BATCH_SIZE)
    for batch in _batches(world.events, BATCH_SIZE * 2):
        Event.objects.bulk_create(
            [
                Event(
                    source=source,
                    message_id=planned.message_id,
                    customer=planned.customer,
                    type=planned.type,
                    name=planned.name,
                    user_id=planned.user_id,
                    anonymous_id=planned.anonymous_id,
                    properties=planned.properties,
                    context=planned.context,
                    timestamp=planned.timestamp,
                    original_timestamp=planned.timestamp,
                    sent_at=planned.timestamp + timedelta(milliseconds=200 + planned.timestamp.microsecond % 4000),
                    received_at=planned.timestamp + timedelta(milliseconds=200 + planned.timestamp.microsecond % 4000),
                )
                for planned in batch
            ],
            batch_size=BATCH_SIZE,
        )

    # MRR through the one function every other writer uses; it reads add_on_items, hence the prefetch. Only
    # non-zero values are written back: every row was inserted with the default of 0.
    mrr_by_customer: Counter[int] = Counter()
    changed: list[Subscription] = []
    stored = (
        Subscription.objects.filter(stripe_subscription_id__startswith=STRIPE_SUBSCRIPTION_PREFIX)
        .select_related("plan")
        .prefetch_related("add_on_items__add_on")
    )
    convert = conversion()
    for subscription in stored.iterator(chunk_size=BATCH_SIZE):
        subscription.currency = subscription.plan.currency
        subscription.mrr_amount = subscription_mrr_amount(subscription)
        subscription.mrr_cents = convert.to_cents(subscription.mrr_amount, subscription.currency)
        if subscription.mrr_cents:
            mrr_by_customer[subscription.customer_id] += subscription.mrr_cents
            changed.append(subscription)
    Subscription.objects.bulk_update(changed, ["currency", "mrr_amount", "mrr_cents"], batch_size=BATCH_SIZE)
    mrr_by_pk = {subscription.pk: subscription.mrr_cents for subscription in changed}
    for planned in world.subscriptions:
        planned.mrr_cents = mrr_by_pk.get(planned.pk, 0)
    paying = [customer for customer in world.customers if mrr_by_customer[customer.pk]]
    for customer in paying:
        customer.mrr_cents = mrr_by_customer[customer.pk]
    Customer.objects.bulk_update(paying, ["mrr_cents"], batch_size=BATCH_SIZE)


# --- summary ------------------------------------------------------------------------------------------------------


def _counts(world: _World) -> dict[str, int]:
    """Rows written per model."""
    return {
        "products": len(world.catalogue.products),
        "plans": len(world.catalogue.plans),
        "add-ons": len(world.catalogue.add_ons),
        "accounts": len(world.accounts),
        "customers": len(world.customers),
        "anonymous ids": len(world.anonymous_ids),
        "subscriptions": len(world.subscriptions),
        "subscription add-ons": len(world.add_on_items),
        "events": len(world.events),
    }


def _status_counts(subscriptions: Sequence[Subscription]) -> dict[str, int]:
    """Subscriptions per status, in the order Subscription.Status declares them (zeros included)."""
    counts = Counter(subscription.status for subscription in subscriptions)
    return {status.value: counts.get(status.value, 0) for status in Subscription.Status}


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


def _conversion(world: _World) -> dict[str, ConversionRate]:
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
