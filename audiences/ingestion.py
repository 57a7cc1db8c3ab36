"""Storing tracked calls: identities resolved and de-duplicated events inserted in the request, profiles after it.

`messages_ingest` runs inside the tracking API's request and does only what must be durable before the 200:
decide which customer each call belongs to (audiences.identity: creating, upgrading or merging profiles) and
insert the events. It costs a handful of set-based statements whatever the batch size. Everything the events
imply for the profiles — identify traits, email and name, account membership and traits, first/last seen — is
applied by `profiles_apply_events` in a Celery task queued when the transaction commits, so ingestion stays fast
and the profile work is batched.

Events are inserted with ON CONFLICT (source, message_id) DO NOTHING, so a retried batch never stores anything
twice; a batch that lost a race (a constraint, a deadlock, a profile merged away meanwhile) rolls back and is
resolved again, and one that joins ids for the first time starts again holding identity locks on them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import orjson
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from audiences.identity import IdentityLocksNeeded, Profile, Resolver, identities_apply, identities_lock
from audiences.models import Customer, Event, PendingEventBatch, Source
from audiences.prepared import postgres_rows
from audiences.privacy.erase import erased_among
from audiences.tasks import profile_work_queue

logger = logging.getLogger(__name__)

RESOLUTION_ATTEMPTS = 4
EVENT_COLUMNS = (
    "source_id",
    "message_id",
    "customer_id",
    "type",
    "name",
    "user_id",
    "anonymous_id",
    "group_id",
    "properties",
    "context",
    "timestamp",
    "original_timestamp",
    "sent_at",
    "received_at",
)


@dataclass(slots=True)
class IncomingMessage:
    """One validated call, in the shape the profile store needs (produced by integrations.segment)."""

    type: str
    message_id: str
    user_id: str | None
    anonymous_id: str | None
    name: str
    properties: dict[str, Any]
    context: dict[str, Any]
    timestamp: datetime
    received_at: datetime
    original_timestamp: datetime | None = None
    sent_at: datetime | None = None
    group_id: str | None = None
    previous_id: str | None = None
    traits: dict[str, Any] = field(default_factory=dict)


@dataclass
class IngestResult:
    """What a batch did: the ids of the events it stored and how many calls were duplicates."""

    event_ids: list[int] = field(default_factory=list)
    duplicates: int = 0
    suppressed: int = 0  # calls under the ids of a customer erased with suppression (GDPR)

    @property
    def stored(self) -> int:
        return len(self.event_ids)


# PostgreSQL types of the columns after source_id, for passing a batch as one array per column to unnest().
_PG_ARRAY_TYPES = (
    "text[]", "bigint[]", "text[]", "text[]", "text[]", "text[]", "text[]",
    "jsonb[]", "jsonb[]", "timestamptz[]", "timestamptz[]", "timestamptz[]", "timestamptz[]",
)  # fmt: skip


def _event_columns(rows: list[tuple[IncomingMessage, int]]) -> list[list[Any]]:
    """The batch's values column by column, in EVENT_COLUMNS order after source_id (one pass per column)."""
    messages = [message for message, _ in rows]
    dumps = orjson.dumps
    return [
        [m.message_id for m in messages],
        [customer_id for _, customer_id in rows],
        [m.type for m in messages],
        [m.name for m in messages],
        [m.user_id or "" for m in messages],
        [m.anonymous_id or "" for m in messages],
        [m.group_id or "" for m in messages],
        [dumps(m.properties).decode() for m in messages],
        [dumps(m.context).decode() for m in messages],
        [m.timestamp for m in messages],
        [m.original_timestamp for m in messages],
        [m.sent_at for m in messages],
        [m.received_at for m in messages],
    ]


def _insert_events(source: Source, rows: list[tuple[IncomingMessage, int]]) -> list[int]:
    """One INSERT … ON CONFLICT DO NOTHING RETURNING id: the ids of the events actually stored.

    On PostgreSQL the batch travels as one array per column through unnest() (the source, the same for every
    row, as one value), which keeps the statement small and constant (prepared once) however many rows it
    carries; SQLite gets a multi-row VALUES.
    """
    columns = _event_columns(rows)
    names = ", ".join(EVENT_COLUMNS)
    conflict = "ON CONFLICT (source_id, message_id) DO NOTHING RETURNING id"
    if connection.vendor == "postgresql":
        # psycopg's own cursor binds on the server and sends the arrays in binary: no per-element escaping.
        arrays = ", ".join(f"%b::{array_type}" for array_type in _PG_ARRAY_TYPES)
        sql = f"INSERT INTO {Event._meta.db_table} ({names}) SELECT %b::bigint, * FROM unnest({arrays}) {conflict}"
        return [row[0] for row in postgres_rows(sql, [source.pk, *columns])]
    adapt = connection.ops.adapt_datetimefield_value
    for times in columns[-4:]:
        times[:] = [adapt(value) for value in times]
    placeholders = "(" + ", ".join(["%s"] * len(EVENT_COLUMNS)) + ")"
    sql = f"INSERT INTO {Event._meta.db_table} ({names}) VALUES {', '.join([placeholders] * len(rows))} {conflict}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in zip(*columns, strict=True) for value in (source.pk, *row)])
        return [row[0] for row in cursor.fetchall()]


def _customers_still_there(customer_ids: set[int]) -> bool:
    """Whether every profile the batch resolved to still exists, holding it until commit.

    Events carry no database foreign key (see Event), so the batch's customers are locked instead of checked row
    by row: on PostgreSQL the identity lookup (_known_ids) already took FOR KEY SHARE locks on the customers it
    found, which a concurrent merge's delete waits for; this statement does the same for the few found or made
    after it (read back after a concurrent insert, a link another batch won). A profile already merged away
    makes the batch resolve again. SQLite runs one writer at a time anyway and checks every customer here.
    """
    if connection.vendor == "postgresql":
        sql = (
            "SELECT customer.id FROM unnest(%b::bigint[]) AS wanted(id) CROSS JOIN LATERAL"
            f" (SELECT id FROM {Customer._meta.db_table} WHERE id = wanted.id FOR KEY SHARE) customer"
        )
        return len(postgres_rows(sql, [list(customer_ids)])) == len(customer_ids)
    return Customer.objects.filter(pk__in=customer_ids).count() == len(customer_ids)


def _resolve(
    messages: list[IncomingMessage], result: IngestResult
) -> tuple[Resolver, list[tuple[IncomingMessage, Profile]]]:
    """Read what the database knows of the batch's ids and map each call (but those of erased people) to a profile."""
    resolver = Resolver(messages)
    erased = erased_among(resolver.unknown_ids)  # only ids no profile holds can belong to an erased customer
    result.suppressed = 0
    if erased:
        allowed = [m for m in messages if not ({m.user_id, m.anonymous_id, m.previous_id} & erased)]
        result.suppressed = len(messages) - len(allowed)
        messages = allowed
        resolver = Resolver(messages)
    return resolver, [(message, resolver.resolve(message)) for message in messages]


def _ingest_once(
    source: Source, messages: list[IncomingMessage], result: IngestResult, identity_locks: set[str]
) -> None:
    now = timezone.now()
    if identity_locks:
        identities_lock(identity_locks)  # before anything else, so they are never waited for holding a row lock
    resolver, resolved = _resolve(messages, result)
    if connection.vendor == "postgresql" and resolver.joining_ids - identity_locks:
        # Only calls that join two ids for the first time (a new pair, a sign-in, a merge) get here, so the hot
        # path rarely pays for the second reading. SQLite's IMMEDIATE transactions run one batch at a time.
        raise IdentityLocksNeeded(identity_locks | resolver.joining_ids)

    identities_apply(resolver, now)

    rows: list[tuple[IncomingMessage, int]] = []
    for message, profile in resolved:
        rows.append((message, resolver.live(profile).stored_pk))
    # Customers the lookup locked are there until commit; only profiles found or made since need the check.
    unlocked = {customer_id for _, customer_id in rows} - resolver.locked
    if unlocked and not _customers_still_there(unlocked):
        raise IntegrityError("a profile this batch resolved to was merged away meanwhile")
    for start in range(0, len(rows), 500):
        result.event_ids += _insert_events(source, rows[start : start + 500])


def messages_ingest(*, source: Source, messages: list[IncomingMessage]) -> IngestResult:
    """Store a batch of calls from one source, resolving identities; durable when this returns.

    Calls whose message id this source already sent (a client's retry, or a repeat inside the batch) are
    skipped. The stored events' profile effects are queued (profiles_apply_events) for when the batch commits.
    A batch that turns out to join ids (see Resolver.joining_ids) starts again holding identity locks on them
    (identities_lock); a lost race (a deadlock, a constraint) resolves it again, up to RESOLUTION_ATTEMPTS times.
    """
    unique: dict[str, IncomingMessage] = {}
    for message in messages:
        unique.setdefault(message.message_id, message)
    identity_locks: set[str] = set()
    attempt = 1
    while True:
        result = IngestResult()
        try:
            with transaction.atomic():
                _ingest_once(source, list(unique.values()), result, identity_locks)
                result.duplicates = len(messages) - result.stored - result.suppressed
                if result.event_ids:
                    PendingEventBatch.objects.create(
                        first_event_id=min(result.event_ids), event_ids=result.event_ids, created_at=timezone.now()
                    )
                    transaction.on_commit(partial(profile_work_queue, result.event_ids))
            return result
        except IdentityLocksNeeded as needed:
            # Rolled back (nothing was written, and the row locks of the reading are released): again, with the
            # locks. Not an attempt: the set only grows, so this ends within the batch's number of ids.
            identity_locks = needed.identifiers
            continue
        except (IntegrityError, OperationalError) as error:
            if attempt == RESOLUTION_ATTEMPTS or (
                isinstance(error, OperationalError) and "deadlock" not in str(error).lower()
            ):
                raise
            logger.info("identity race on attempt %s; resolving the batch again", attempt)
            attempt += 1
