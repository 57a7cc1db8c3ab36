"""Facts become deliveries: every fact recorded below (config.facts) is written, set-based and in the recorder's
transaction, as one DestinationDelivery per subscribed destination, and a flush is queued once it commits."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from audiences.models import AnonymousId, Customer
from config.facts import Fact, FactKind
from integrations.destinations.models import Destination, DestinationDelivery
from integrations.destinations.payloads import segment_calls, webhook_payload
from integrations.destinations.tasks import flush_destination


def _message_check(message: Fact) -> None:
    if message.kind not in FactKind.values:
        raise ValueError(f"Unknown outbound kind {message.kind!r}.")
    if not message.idempotency_key or len(message.idempotency_key) > DestinationDelivery.MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValueError(
            f"An idempotency key must have 1 to {DestinationDelivery.MAX_IDEMPOTENCY_KEY_LENGTH} characters: "
            f"{message.idempotency_key!r}."
        )
    if timezone.is_naive(message.occurred_at):
        raise ValueError("occurred_at must be timezone-aware.")


def _first_anonymous_ids(customer_ids: Collection[int]) -> dict[int, str]:
    """Each customer's oldest anonymous id (one query), for customers Segment knows by no user id."""
    if not customer_ids:
        return {}
    first: dict[int, str] = {}
    rows = AnonymousId.objects.filter(customer_id__in=customer_ids).order_by("customer_id", "id")
    for customer_id, anonymous_id in rows.values_list("customer_id", "anonymous_id"):
        first.setdefault(customer_id, anonymous_id)
    return first


def _delivery_new(
    destination: Destination,
    message: Fact,
    customer: Customer | None,
    anonymous_ids: dict[int, str],
    now: datetime,
) -> DestinationDelivery:
    delivery = DestinationDelivery(
        destination=destination,
        kind=message.kind,
        customer=customer,
        idempotency_key=message.idempotency_key,
        status=DestinationDelivery.Status.PENDING,
        next_attempt_at=now,
    )
    skip = ""
    if destination.kind == Destination.Kind.SEGMENT:
        ids: dict[str, str] = {}
        if customer is not None and customer.user_id:
            ids = {"userId": customer.user_id}
        elif customer is not None and customer.pk in anonymous_ids:
            ids = {"anonymousId": anonymous_ids[customer.pk]}
        else:
            skip = "The customer has no user id or anonymous id to send as."
        delivery.payload = {"messages": segment_calls(message, ids)}
    else:
        delivery.payload = webhook_payload(message, customer)
    if customer is None:
        skip = f"Customer {message.customer_id} no longer exists."
    elif not customer.has_consent(destination.consent_category):
        skip = f"The customer withdrew consent for “{destination.consent_category}”."
    if skip:
        delivery.status, delivery.last_error, delivery.next_attempt_at = DestinationDelivery.Status.SKIPPED, skip, None
    return delivery


def facts_deliver(sender: object, *, facts: Sequence[Fact], **kwargs: Any) -> None:
    """Receiver of config.facts.facts_recorded: every recorded fact becomes deliveries (see outbound_emit)."""
    outbound_emit(facts)


def outbound_emit(messages: Sequence[Fact]) -> int:
    """Create delivery rows for every destination subscribed to each message's kind, and flush them once the
    caller's transaction commits. Returns the number of deliveries created, skipped ones included.

    Set-based: five queries whatever the number of messages — destinations, customers, anonymous ids when a
    Segment destination needs them, the keys already delivered, and one INSERT (per thousand rows; SQLite's
    999-variable limit splits it further). A message whose key a
    destination already has is ignored, so emitting twice is harmless; the unique (destination, key)
    constraint settles a race between two emitters. Customers who withdrew consent for the destination's
    category get a skipped delivery, so the log shows why nothing went out. A paused destination still gets
    its deliveries; they wait for the resume.
    """
    if not messages:
        return 0
    for message in messages:
        _message_check(message)
    wanted = {message.kind for message in messages}
    destinations = [d for d in Destination.objects.order_by("pk") if wanted.intersection(d.kinds)]
    if not destinations:
        return 0
    customers = Customer.objects.only("id", "user_id", "email", "consent").in_bulk(
        {message.customer_id for message in messages}
    )
    anonymous_ids: dict[int, str] = {}
    if any(destination.kind == Destination.Kind.SEGMENT for destination in destinations):
        anonymous_ids = _first_anonymous_ids([pk for pk, customer in customers.items() if not customer.user_id])
    keys = {message.idempotency_key for message in messages}
    seen = set(
        DestinationDelivery.objects.filter(destination__in=destinations, idempotency_key__in=keys).values_list(
            "destination_id", "idempotency_key"
        )
    )
    now = timezone.now()
    rows: list[DestinationDelivery] = []
    for destination in destinations:
        for message in messages:
            if message.kind not in destination.kinds or (destination.pk, message.idempotency_key) in seen:
                continue
            seen.add((destination.pk, message.idempotency_key))
            rows.append(_delivery_new(destination, message, customers.get(message.customer_id), anonymous_ids, now))
    DestinationDelivery.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    flush_on_commit(sorted({row.destination_id for row in rows if row.status == DestinationDelivery.Status.PENDING}))
    return len(rows)


def flush_on_commit(destination_ids: Sequence[int]) -> None:
    """Queue a flush of each destination once the current transaction commits."""
    for destination_id in destination_ids:
        transaction.on_commit(partial(flush_destination.delay, destination_id))
