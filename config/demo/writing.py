"""Writing the planned world to the database in bulk, in one transaction, and counting what was written."""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from itertools import islice
from typing import Any

from audiences.models import Account, AnonymousId, Customer, Event, Source
from config.demo.plan import World
from config.demo.vocabulary import BATCH_SIZE, STRIPE_SUBSCRIPTION_PREFIX
from integrations.stripe.currency import conversion
from integrations.stripe.models import Subscription, SubscriptionAddOn
from integrations.stripe.mrr import subscription_mrr_amount


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
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


def world_write(world: World, source: Source) -> None:
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


def counts_of(world: World) -> dict[str, int]:
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


def status_counts(subscriptions: Sequence[Subscription]) -> dict[str, int]:
    """Subscriptions per status, in the order Subscription.Status declares them (zeros included)."""
    counts = Counter(subscription.status for subscription in subscriptions)
    return {status.value: counts.get(status.value, 0) for status in Subscription.Status}
