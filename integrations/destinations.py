"""Fact destinations: Trialloop's results (audience entered/exited, trait changes, billing events, later
alerts and offers) sent to signed webhooks or to any Segment-compatible API.

The flow: a producer records facts (config.facts) inside its own transaction and `outbound_emit`, subscribed to
them, runs there; one DestinationDelivery row is written per
message and subscribed destination (set-based, duplicates ignored by idempotency key, withdrawn consent
recorded as a skip), and once the transaction commits a task flushes each destination. A flush sends the
due deliveries of one destination in order — one POST per webhook message, signed by the Standard Webhooks
scheme (receivers verify with that project's official libraries), or `/v1/batch` posts of up
to 100 calls for a Segment destination — and records every outcome: 2xx delivered; a 4xx other than 408/429
failed for good; anything else retried with exponential backoff and jitter. A transient failure ends the
flush, so a receiver that is down is probed by the next run instead of being hammered. The beat sweep
(`deliveries_dispatch`) starts flushes for every destination with due deliveries, so retries and anything a
lost task left behind go out. Delivery is at least once: the idempotency key is sent with every message.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import orjson
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from audiences.models import AnonymousId, Customer
from config.facts import Fact, FactKind
from config.locks import task_lock
from config.retry import RetryPolicy
from integrations.models import (
    Destination,
    DestinationDelivery,
    consent_category_validator,
    signing_secret_generate,
)
from integrations.outbound_http import HttpResult, UnsafeUrl, http_post, url_check

# Standard Webhooks (https://www.standardwebhooks.com): the message id (our idempotency key, the same on every
# retry), the Unix time of this attempt, and one `v1,<base64 HMAC-SHA256>` per signing secret.
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
USER_AGENT = "Trialloop-Destinations/1"
PAYLOAD_VERSION = 1
# After a rotation, webhooks carry a signature with the previous secret too, for this long.
PREVIOUS_SECRET_VALID_FOR = timedelta(hours=24)

# Backoff before try n + 1: 30 s × 4^(n − 1), at most 12 h, ± 20 %: 30 s, 2 min, 8 min, 32 min, 2 h, 8.5 h,
# 12 h — eight tries spread over about a day.
DELIVERY_RETRY = RetryPolicy(first=30, growth=4, cap=12 * 3600, jitter=0.2)

# Segment's HTTP API limits: 32 KB per call, 500 KB per batch request; we send at most 100 calls per batch.
SEGMENT_BATCH_CALLS = 100
SEGMENT_BATCH_BYTES = 500 * 1000
SEGMENT_CALL_BYTES = 32 * 1024
SEGMENT_LIBRARY = {"name": "trialloop", "version": "1"}
SEGMENT_KINDS = frozenset(
    {
        FactKind.AUDIENCE_ENTERED,
        FactKind.AUDIENCE_EXITED,
        FactKind.TRAIT_CHANGED,
        FactKind.BILLING_EVENT,
    }
)

FLUSH_CHUNK = 200
FLUSH_BUDGET_SECONDS = 50.0
FLUSH_LOCK_TTL = timedelta(minutes=5)
MAX_ERROR_CHARS = 2000


class DestinationInvalid(ValueError):
    """A destination's settings cannot be saved; `field` names the setting at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


class ReplayRefused(ValueError):
    """Only delivered or failed deliveries are replayed (pending ones are on their way; skipped ones were
    withheld on purpose)."""


# --- configuration ---------------------------------------------------------------------------------------


def kinds_check(*, kind: str, kinds: Sequence[str]) -> list[str]:
    """The subscribed kinds, de-duplicated, or DestinationInvalid naming what is wrong with them."""
    chosen = list(dict.fromkeys(kinds))
    unknown = [value for value in chosen if value not in FactKind.values]
    if unknown:
        raise DestinationInvalid("kinds", f"Unknown kinds: {', '.join(map(str, unknown))}.")
    if not chosen:
        raise DestinationInvalid("kinds", "Choose at least one kind of message.")
    if kind == Destination.Kind.SEGMENT:
        unmapped = [FactKind(value).label for value in chosen if value not in SEGMENT_KINDS]
        if unmapped:
            raise DestinationInvalid(
                "kinds",
                f"A Segment destination receives audience, trait and billing messages only, not {', '.join(unmapped)}.",
            )
    return chosen


def _settings_checked(*, kind: str, url: str, kinds: Sequence[str], consent_category: str, write_key: str) -> list[str]:
    if kind not in Destination.Kind.values:
        raise DestinationInvalid("kind", f"Unknown destination kind {kind!r}.")
    try:
        url_check(url)
    except UnsafeUrl as unsafe:
        raise DestinationInvalid("url", str(unsafe)) from unsafe
    try:
        consent_category_validator(consent_category)
    except ValidationError as invalid:
        raise DestinationInvalid("consent_category", " ".join(invalid.messages)) from invalid
    if kind == Destination.Kind.SEGMENT and not write_key:
        raise DestinationInvalid("write_key", "A Segment destination needs the write key of the receiving source.")
    return kinds_check(kind=kind, kinds=kinds)


def destination_create(
    *,
    name: str,
    kind: str,
    url: str,
    kinds: Sequence[str],
    consent_category: str = Destination.DEFAULT_CONSENT_CATEGORY,
    write_key: str = "",
) -> Destination:
    """Create a destination with a fresh signing secret, after checking its URL is safe to send to."""
    chosen = _settings_checked(kind=kind, url=url, kinds=kinds, consent_category=consent_category, write_key=write_key)
    try:
        with transaction.atomic():
            return Destination.objects.create(
                name=name.strip(),
                kind=kind,
                url=url.strip(),
                kinds=chosen,
                consent_category=consent_category,
                write_key=write_key if kind == Destination.Kind.SEGMENT else "",
            )
    except IntegrityError as taken:
        raise DestinationInvalid("name", "A destination with this name already exists.") from taken


def destination_update(
    *,
    destination: Destination,
    name: str,
    url: str,
    kinds: Sequence[str],
    consent_category: str,
    write_key: str = "",
) -> Destination:
    """Change a destination's settings; its kind stays (pending payloads are built for it). An empty
    `write_key` keeps the stored one. Deliveries already created keep the payload they were created with."""
    new_key = write_key or destination.write_key
    chosen = _settings_checked(
        kind=destination.kind, url=url, kinds=kinds, consent_category=consent_category, write_key=new_key
    )
    destination.name, destination.url, destination.kinds = name.strip(), url.strip(), chosen
    destination.consent_category = consent_category
    destination.write_key = new_key if destination.kind == Destination.Kind.SEGMENT else ""
    try:
        with transaction.atomic():
            destination.save()
    except IntegrityError as taken:
        raise DestinationInvalid("name", "A destination with this name already exists.") from taken
    return destination


def destination_rotate_secret(*, destination: Destination) -> str:
    """Replace the signing secret; the previous one keeps signing alongside for PREVIOUS_SECRET_VALID_FOR."""
    destination.previous_signing_secret = destination.signing_secret
    destination.signing_secret = signing_secret_generate()
    destination.secret_rotated_at = timezone.now()
    destination.save(update_fields=["signing_secret", "previous_signing_secret", "secret_rotated_at", "updated_at"])
    return destination.signing_secret


def destination_pause(*, destination: Destination) -> None:
    """Stop sending; deliveries keep being created and wait, pending, for the resume. Saved, not updated in bulk,
    so the audit log records who paused it."""
    destination.is_paused = True
    destination.save(update_fields=["is_paused", "updated_at"])


def destination_resume(*, destination: Destination) -> None:
    """Send again, starting with what waited while paused (after this transaction commits); audited like a pause."""
    destination.is_paused = False
    destination.save(update_fields=["is_paused", "updated_at"])
    _flush_on_commit([destination.pk])


def destination_delivery_replay(*, delivery: DestinationDelivery) -> None:
    """Send a delivered or failed delivery again, with its original payload and idempotency key."""
    replayed = DestinationDelivery.objects.filter(
        pk=delivery.pk, status__in=[DestinationDelivery.Status.DELIVERED, DestinationDelivery.Status.FAILED]
    ).update(status=DestinationDelivery.Status.PENDING, attempts=0, next_attempt_at=timezone.now())
    if not replayed:
        status = DestinationDelivery.objects.filter(pk=delivery.pk).values_list("status", flat=True).first()
        now_is = DestinationDelivery.Status(status).label.lower() if status else "gone"
        raise ReplayRefused(f"Only delivered or failed deliveries can be replayed; this one is {now_is}.")
    _flush_on_commit([delivery.destination_id])


# --- signing ---------------------------------------------------------------------------------------------


def webhook_signature(secrets: Sequence[str], message_id: str, body: bytes, moment: datetime) -> str:
    """The `webhook-signature` header: `v1,<signature>` per secret (two after a rotation), space-separated."""
    return " ".join(Webhook(secret).sign(message_id, moment, body.decode()) for secret in secrets)


def _signing_secrets(destination: Destination, now: datetime) -> list[str]:
    secrets = [destination.signing_secret]
    rotated = destination.secret_rotated_at
    if destination.previous_signing_secret and rotated and now - rotated < PREVIOUS_SECRET_VALID_FOR:
        secrets.append(destination.previous_signing_secret)
    return secrets


# --- payloads --------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Plain JSON types only (datetimes as ISO 8601, decimals as strings), as the JSON column will hold them."""
    return orjson.loads(orjson.dumps(value, default=str))


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _customer_summary(customer_id: int, customer: Customer | None) -> dict[str, Any]:
    return {
        "id": customer_id,
        "user_id": customer.user_id if customer else None,
        "email": (customer.email or None) if customer else None,
    }


def webhook_payload(message: Fact, customer: Customer | None) -> dict[str, Any]:
    """The JSON body of a webhook: what happened, to whom, when, and the kind-specific data."""
    return {
        "version": PAYLOAD_VERSION,
        "kind": message.kind,
        "idempotency_key": message.idempotency_key,
        "occurred_at": _iso(message.occurred_at),
        "customer": _customer_summary(message.customer_id, customer),
        "data": _jsonable(message.data),
    }


def _field(data: dict[str, Any], *path: str) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise ValueError(f"Fact data lacks {'.'.join(path)}: {data!r}")
        value = value[key]
    return value


def segment_calls(message: Fact, ids: dict[str, str]) -> list[dict[str, Any]]:
    """The identify/track calls Segment Engage would send for this message.

    Audience entered/exited: identify `{audience_key: true|false}` and track "Audience Entered"/"Audience
    Exited" with `{audience_key, audience_name}`; trait changed: identify `{trait_key: new}`; billing event:
    track with its name and properties. The track (or the only call) has the idempotency key as messageId;
    the identify accompanying an audience track has the key plus ":identify", so the receiver keeps both.
    """
    common = {**ids, "timestamp": _iso(message.occurred_at), "context": {"library": SEGMENT_LIBRARY}}
    key = message.idempotency_key
    if message.kind in (FactKind.AUDIENCE_ENTERED, FactKind.AUDIENCE_EXITED):
        audience_key = str(_field(message.data, "audience", "key"))
        entered = message.kind == FactKind.AUDIENCE_ENTERED
        context = {
            "library": SEGMENT_LIBRARY,
            "personas": {
                "computation_class": "audience",
                "computation_key": audience_key,
                "computation_id": str(_field(message.data, "audience", "id")),
            },
        }
        return [
            {**common, "context": context, "type": "identify", "messageId": f"{key}:identify",
             "traits": {audience_key: entered}},
            {**common, "context": context, "type": "track", "messageId": key,
             "event": "Audience Entered" if entered else "Audience Exited",
             "properties": {"audience_key": audience_key,
                            "audience_name": str(_field(message.data, "audience", "name"))}},
        ]  # fmt: skip
    if message.kind == FactKind.TRAIT_CHANGED:
        trait_key = str(_field(message.data, "trait", "key"))
        new = _jsonable(message.data.get("new"))
        return [{**common, "type": "identify", "messageId": key, "traits": {trait_key: new}}]
    if message.kind == FactKind.BILLING_EVENT:
        properties = _jsonable(message.data.get("properties") or {})
        return [{**common, "type": "track", "messageId": key, "event": str(_field(message.data, "event")),
                 "properties": properties}]  # fmt: skip
    raise ValueError(f"Segment destinations do not forward {message.kind!r} messages.")


# --- emitting --------------------------------------------------------------------------------------------


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
    _flush_on_commit(sorted({row.destination_id for row in rows if row.status == DestinationDelivery.Status.PENDING}))
    return len(rows)


def _flush_on_commit(destination_ids: Sequence[int]) -> None:
    from integrations.tasks import flush_destination

    for destination_id in destination_ids:
        transaction.on_commit(partial(flush_destination.delay, destination_id))


# --- sending ---------------------------------------------------------------------------------------------


def delivery_backoff(attempts: int, *, rng: random.Random | None = None) -> timedelta:
    """How long to wait after `attempts` failed tries (DELIVERY_RETRY, the project's retry policy): ± 20 %
    jitter so deliveries that failed together do not all come back at the same moment."""
    return DELIVERY_RETRY.wait(attempts, rng=rng)


_RECORDED_FIELDS = [
    "status", "attempts", "next_attempt_at", "last_attempt_at", "last_failed_at", "last_status_code", "last_error",
    "delivered_at",
]  # fmt: skip


def _record(deliveries: Sequence[DestinationDelivery], result: HttpResult, now: datetime) -> None:
    """Write one attempt's outcome on each delivery it carried, in one UPDATE: a success is the same for every
    delivery (one plain UPDATE by id, the common case, paid after every webhook sent); failures differ per
    delivery (attempts, backoff with jitter) and are written by bulk_update."""
    for delivery in deliveries:
        delivery.attempts += 1
        delivery.last_attempt_at, delivery.last_status_code = now, result.status
        if result.ok:
            delivery.status, delivery.delivered_at = DestinationDelivery.Status.DELIVERED, now
            delivery.next_attempt_at, delivery.last_error = None, ""
            continue
        delivery.last_failed_at, delivery.last_error = now, result.error[:MAX_ERROR_CHARS]
        if result.permanent or delivery.attempts >= DestinationDelivery.MAX_ATTEMPTS:
            delivery.status, delivery.next_attempt_at = DestinationDelivery.Status.FAILED, None
        else:
            delivery.next_attempt_at = now + delivery_backoff(delivery.attempts)
    if result.ok:
        DestinationDelivery.objects.filter(pk__in=[delivery.pk for delivery in deliveries]).update(
            status=DestinationDelivery.Status.DELIVERED,
            attempts=F("attempts") + 1,
            next_attempt_at=None,
            last_attempt_at=now,
            last_status_code=result.status,
            last_error="",
            delivered_at=now,
        )
        return
    DestinationDelivery.objects.bulk_update(deliveries, _RECORDED_FIELDS)


def _skip(deliveries: Sequence[DestinationDelivery], reason: str) -> None:
    for delivery in deliveries:
        delivery.status, delivery.last_error, delivery.next_attempt_at = (
            DestinationDelivery.Status.SKIPPED,
            reason,
            None,
        )
    DestinationDelivery.objects.bulk_update(deliveries, ["status", "last_error", "next_attempt_at"])


def _webhook_send(destination: Destination, delivery: DestinationDelivery) -> HttpResult:
    now = timezone.now()
    body = orjson.dumps(delivery.payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        ID_HEADER: delivery.idempotency_key,
        TIMESTAMP_HEADER: str(int(now.timestamp())),
        SIGNATURE_HEADER: webhook_signature(_signing_secrets(destination, now), delivery.idempotency_key, body, now),
        "Trialloop-Kind": delivery.kind,
        "Trialloop-Attempt": str(delivery.attempts + 1),
    }
    return http_post(destination.url, body, headers)


def segment_batch_url(url: str) -> str:
    """The `/v1/batch` endpoint of a Segment-compatible API, from its base URL (or the endpoint itself)."""
    base = url.strip().rstrip("/")
    return base if base.endswith("/v1/batch") else f"{base}/v1/batch"


def _segment_send(destination: Destination, deliveries: Sequence[DestinationDelivery]) -> HttpResult:
    # No sentAt: our clock is the server's own, so `timestamp` stands as given and receivers apply no skew
    # correction (which would shift every event by the time the request took).
    calls = [call for delivery in deliveries for call in delivery.payload["messages"]]
    body = orjson.dumps({"batch": calls})
    credentials = base64.b64encode(f"{destination.write_key}:".encode()).decode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "Authorization": f"Basic {credentials}"}
    return http_post(segment_batch_url(destination.url), body, headers)


def _segment_batches(
    deliveries: Sequence[DestinationDelivery],
) -> tuple[list[list[DestinationDelivery]], list[DestinationDelivery]]:
    """Pack deliveries, in order, into batches of at most SEGMENT_BATCH_CALLS calls and SEGMENT_BATCH_BYTES;
    also returns the deliveries with a call over Segment's 32 KB limit, which no batch can carry."""
    batches: list[list[DestinationDelivery]] = []
    too_large: list[DestinationDelivery] = []
    current: list[DestinationDelivery] = []
    calls = size = 0
    for delivery in deliveries:
        sizes = [len(orjson.dumps(call)) + 1 for call in delivery.payload["messages"]]  # 1: the comma
        if any(one > SEGMENT_CALL_BYTES for one in sizes):
            too_large.append(delivery)
            continue
        if current and (calls + len(sizes) > SEGMENT_BATCH_CALLS or size + sum(sizes) > SEGMENT_BATCH_BYTES):
            batches.append(current)
            current, calls, size = [], 0, 0
        current.append(delivery)
        calls, size = calls + len(sizes), size + sum(sizes)
    if current:
        batches.append(current)
    return batches, too_large


@dataclass
class FlushResult:
    """What one flush of a destination did; `more` means it stopped for time with deliveries still due."""

    delivered: int = 0
    failed: int = 0
    retrying: int = 0
    skipped: int = 0
    more: bool = False


def _tally(result: FlushResult, deliveries: Sequence[DestinationDelivery]) -> None:
    for delivery in deliveries:
        if delivery.status == DestinationDelivery.Status.DELIVERED:
            result.delivered += 1
        elif delivery.status == DestinationDelivery.Status.FAILED:
            result.failed += 1
        else:
            result.retrying += 1


def _due(destination_id: int) -> list[DestinationDelivery]:
    return list(
        DestinationDelivery.objects.filter(
            destination_id=destination_id,
            status=DestinationDelivery.Status.PENDING,
            next_attempt_at__lte=timezone.now(),
            destination__is_paused=False,
        )
        .select_related("customer")
        .order_by("next_attempt_at", "id")[:FLUSH_CHUNK]
    )


def _send_chunk(destination: Destination, due: list[DestinationDelivery], result: FlushResult, deadline: float) -> bool:
    """Send one chunk of due deliveries; False when a transient failure says to stop for now, or the run's
    time is up (then `result.more` is set)."""
    withheld = [d for d in due if d.customer is not None and not d.customer.has_consent(destination.consent_category)]
    if withheld:
        _skip(withheld, f"The customer withdrew consent for “{destination.consent_category}” before it was sent.")
        result.skipped += len(withheld)
    withheld_ids = {delivery.pk for delivery in withheld}
    sendable = [delivery for delivery in due if delivery.pk not in withheld_ids]
    if destination.kind == Destination.Kind.SEGMENT:
        groups, too_large = _segment_batches(sendable)
        if too_large:
            _record(
                too_large, HttpResult(status=None, error="A call is larger than 32 KB.", refused=True), timezone.now()
            )
            _tally(result, too_large)
    else:
        groups = [[delivery] for delivery in sendable]
    for group in groups:
        if destination.kind == Destination.Kind.SEGMENT:
            outcome = _segment_send(destination, group)
        else:
            outcome = _webhook_send(destination, group[0])
        _record(group, outcome, timezone.now())
        _tally(result, group)
        if not outcome.ok and not outcome.permanent:
            return False
        if time.monotonic() >= deadline:
            result.more = True
            return False
    return True


def destination_flush(*, destination_id: int) -> FlushResult:
    """Send a destination's due deliveries, oldest first, and record each outcome.

    One flush per destination at a time (a database lease), so nothing is sent twice by two workers. A
    transient failure ends the run: the receiver is tried again by the next run rather than once per waiting
    delivery. A run stops after FLUSH_BUDGET_SECONDS (well inside its lease) with `more` set, for the task to
    queue the next one.
    """
    result = FlushResult()
    with task_lock(f"destination flush {destination_id}", ttl=FLUSH_LOCK_TTL) as acquired:
        if not acquired:
            return result
        destination = Destination.objects.filter(pk=destination_id).first()
        if destination is None:
            return result
        deadline = time.monotonic() + FLUSH_BUDGET_SECONDS
        while True:
            due = _due(destination_id)
            if not due or not _send_chunk(destination, due, result, deadline):
                return result


def deliveries_dispatch() -> list[int]:
    """The beat sweep: queue a flush for every destination (not paused) with deliveries due now — retries
    whose backoff has passed, and anything a lost task left behind. Returns those destinations' ids (none
    when another sweep holds the lease)."""
    from integrations.tasks import flush_destination

    with task_lock("destination deliveries", ttl=timedelta(minutes=2)) as acquired:
        if not acquired:
            return []
        due = DestinationDelivery.objects.filter(
            destination=OuterRef("pk"), status=DestinationDelivery.Status.PENDING, next_attempt_at__lte=timezone.now()
        )
        ids = list(
            Destination.objects.filter(is_paused=False).filter(Exists(due)).order_by("pk").values_list("pk", flat=True)
        )
    for destination_id in ids:
        flush_destination.delay(destination_id)
    return ids
