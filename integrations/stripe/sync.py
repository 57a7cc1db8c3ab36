"""Backfill and reconcile from the Stripe API, for installs that start late or missed webhooks.

`stripe_sync_run` pages through products, prices, coupons, customers, subscriptions and charges and applies
each object with the same upsert functions the webhooks use (integrations.stripe.catalogue, .customers,
.subscriptions, .payments), treating it as a snapshot taken now. Its position in each collection is saved
with every page, so an interrupted sync resumes where it stopped. `stripe_events_reconcile` (a daily beat job)
fetches recent events from the API and stores and processes the ones no webhook delivered. The API base is
configurable (STRIPE_API_BASE) so tests run against a local fake; nothing here is used without STRIPE_API_KEY.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from django.db import IntegrityError, transaction
from django.utils import timezone

from audiences.models import Customer
from integrations.stripe.apply import HANDLED_TYPES, stripe_customer_id_of
from integrations.stripe.catalogue import coupon_upsert, price_upsert, product_upsert
from integrations.stripe.customers import CustomerNotLinked, customer_upsert
from integrations.stripe.event_models import StripeEvent, StripeSyncCursor
from integrations.stripe.payments import charge_upsert
from integrations.stripe.processing import stripe_event_process
from integrations.stripe.subscriptions import subscription_upsert
from integrations.stripe.traits import customer_billing_refresh

PAGE_SIZE = 100
COLLECTIONS = ("products", "prices", "coupons", "customers", "subscriptions", "charges")


def _pages(client: stripe.StripeClient, collection: str, starting_after: str) -> Iterator[list[dict[str, Any]]]:
    service = getattr(client.v1, collection)
    params: dict[str, Any] = {"limit": PAGE_SIZE}
    if collection == "subscriptions":
        params |= {"status": "all", "expand": ["data.discounts.source.coupon"]}
    if collection == "prices":
        params |= {"expand": ["data.tiers"]}  # a tiered price's tiers come only when asked for
    while True:
        if starting_after:
            params["starting_after"] = starting_after
        page = service.list(params=params)
        objects = [obj.to_dict() for obj in page.data]
        if objects:
            yield objects
            starting_after = str(objects[-1]["id"])
        if not page.has_more or not objects:
            return


@dataclass
class SyncReport:
    """Objects applied per collection, the ones skipped (customer not linked), and customers refreshed."""

    applied: dict[str, int] = field(default_factory=dict)
    skipped_unlinked: int = 0
    customers_refreshed: int = 0


def _apply(collection: str, obj: dict[str, Any], as_of: datetime, touched: set[int]) -> None:
    if collection == "products":
        product_upsert(obj)
    elif collection == "prices":
        price_upsert(obj)
    elif collection == "coupons":
        coupon_upsert(obj)
    elif collection == "customers":
        linked = customer_upsert(obj, as_of=as_of)
        if linked.customer_id:
            touched.add(linked.customer_id)
    elif collection == "subscriptions":
        touched.add(subscription_upsert(obj, as_of=as_of).subscription.customer_id)
    elif collection == "charges":
        touched.add(charge_upsert(obj).customer_id)


def stripe_sync_run(
    *,
    client: stripe.StripeClient,
    collections: tuple[str, ...] = COLLECTIONS,
    restart: bool = False,
    on_progress: Callable[[str, int], None] | None = None,
) -> SyncReport:
    """Page through the collections, resuming each where the last run stopped (unless `restart`)."""
    report = SyncReport()
    touched: set[int] = set()
    for collection in collections:
        cursor, _ = StripeSyncCursor.objects.get_or_create(collection=collection)
        if restart or cursor.completed_at is not None:
            cursor.last_id, cursor.completed_at = "", None
            cursor.save()
        count = 0
        for objects in _pages(client, collection, cursor.last_id):
            as_of = timezone.now()
            with transaction.atomic():
                for obj in objects:
                    try:
                        with transaction.atomic():
                            _apply(collection, obj, as_of, touched)
                        count += 1
                    except CustomerNotLinked:
                        report.skipped_unlinked += 1
                cursor.last_id = str(objects[-1]["id"])
                cursor.save(update_fields=["last_id", "updated_at"])
            if on_progress is not None:
                on_progress(collection, count)
        cursor.completed_at = timezone.now()
        cursor.save(update_fields=["completed_at", "updated_at"])
        report.applied[collection] = count
    for customer in Customer.objects.filter(pk__in=touched):
        customer_billing_refresh(customer)
    report.customers_refreshed = len(touched)
    return report


def stripe_events_reconcile(*, client: stripe.StripeClient, days: int = 3) -> int:
    """Store and process the events of the last `days` that no webhook delivered; returns how many."""
    since = int((timezone.now() - timedelta(days=days)).timestamp())
    params: Any = {"limit": PAGE_SIZE, "created": {"gte": since}, "types": sorted(HANDLED_TYPES)}
    listed = [event.to_dict() for event in client.v1.events.list(params=params).auto_paging_iter()]
    known = set(StripeEvent.objects.filter(event_id__in=[e["id"] for e in listed]).values_list("event_id", flat=True))
    found = 0
    for payload in sorted(listed, key=lambda e: (e["created"], e["id"])):  # oldest first, as they happened
        if payload["id"] in known:
            continue
        try:
            stored = StripeEvent.objects.create(
                event_id=str(payload["id"]),
                type=str(payload["type"]),
                created=datetime.fromtimestamp(int(payload["created"]), tz=UTC),
                livemode=bool(payload.get("livemode")),
                payload=payload,
                object_id=str(payload["data"]["object"].get("id", ""))[:255],
                stripe_customer_id=stripe_customer_id_of(payload)[:255],
            )
        except IntegrityError:
            continue  # a webhook delivered it meanwhile
        found += 1
        stripe_event_process(event_pk=stored.pk)
    return found
