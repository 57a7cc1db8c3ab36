"""The demo world planned in memory before anything is written: the catalogue, the trials, their billing and
events, and the small random helpers every part of the simulation shares."""

from __future__ import annotations

import calendar
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import accumulate
from typing import Any, NamedTuple

from audiences.models import Account, AnonymousId, Customer
from config.demo.vocabulary import HOUR_WEIGHTS, SIGNUP_WINDOW_DAYS
from integrations.stripe.models import AddOn, Plan, Product, Subscription, SubscriptionAddOn


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


class PlannedEvent(NamedTuple):
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
class Billing:
    """A paid subscription's invoicing facts, kept until statuses are final so lifetime value can be counted."""

    subscription: Subscription
    anchor: datetime
    months: int
    invoice_cents: int
    metered: bool
    failed_invoices: int = 0


@dataclass
class PlannedTrial:
    """A trial subscription with its owner's events, to measure activation exactly as analytics will."""

    subscription: Subscription
    events: list[PlannedEvent]
    trial_start: datetime
    trial_end: datetime
    converted: bool


@dataclass
class Catalogue:
    """The stored products, and plans and add-ons by key (e.g. "team_month", "seat_year")."""

    products: list[Product]
    plans: dict[str, Plan]
    add_ons: dict[str, AddOn]


@dataclass
class World:
    """Everything planned so far; written to the database only once the whole data set is known."""

    rng: random.Random
    now: datetime
    target_customers: int
    catalogue: Catalogue
    day_cum_weights: list[float]
    accounts: list[Account] = field(default_factory=list)
    customers: list[Customer] = field(default_factory=list)
    signed_up_at: dict[int, datetime] = field(default_factory=dict)
    anonymous_ids: list[AnonymousId] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    add_on_items: list[SubscriptionAddOn] = field(default_factory=list)
    billings: list[Billing] = field(default_factory=list)
    trials: list[PlannedTrial] = field(default_factory=list)
    events: list[PlannedEvent] = field(default_factory=list)
    free_fallbacks: set[int] = field(default_factory=set)
    used_tokens: set[str] = field(default_factory=set)
    used_domains: set[str] = field(default_factory=set)
    used_emails: set[str] = field(default_factory=set)


def signup_day_cum_weights(now: datetime) -> list[float]:
    """Cumulative weights for "signed up N days ago" (1…120): a growing product, quieter at weekends."""
    weights = []
    for days_ago in range(1, SIGNUP_WINDOW_DAYS + 1):
        growth = 1.0 + 0.6 * (1 - days_ago / SIGNUP_WINDOW_DAYS)
        weekend = 0.55 if (now - timedelta(days=days_ago)).weekday() >= 5 else 1.0
        weights.append(growth * weekend)
    return list(accumulate(weights))


def signup_time(world: World) -> datetime:
    """A signup moment in the window, mostly during working hours."""
    rng = world.rng
    days_ago = rng.choices(range(1, SIGNUP_WINDOW_DAYS + 1), cum_weights=world.day_cum_weights)[0]
    hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
    return (
        world.now
        - timedelta(days=days_ago)
        + timedelta(hours=hour, minutes=rng.randrange(60), seconds=rng.randrange(60))
    )


def random_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from the seeded generator, so message and anonymous ids are reproducible."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def random_token(world: World, prefix: str, length: int = 14) -> str:
    """A Stripe-looking id (`prefix` + random alphanumerics), unique within the data set."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    while True:
        token = prefix + "".join(world.rng.choices(alphabet, k=length))
        if token not in world.used_tokens:
            world.used_tokens.add(token)
            return token


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar month arithmetic as Stripe bills it (the 31st becomes the last day of a shorter month)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def billing_period(anchor: datetime, months: int, at: datetime) -> tuple[int, datetime, datetime]:
    """The billing period containing `at` for a subscription billed every `months` from `anchor`: index, start, end."""
    index = 0
    while add_months(anchor, (index + 1) * months) <= at:
        index += 1
    return index, add_months(anchor, index * months), add_months(anchor, (index + 1) * months)


def hours_span(value: float) -> timedelta:
    """Shorthand: most timing in the simulation is expressed in hours since the trial started."""
    return timedelta(hours=value)
