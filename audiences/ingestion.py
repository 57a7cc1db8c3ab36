"""Storing tracked calls: identity resolution and de-duplicated events in the request, profiles after it.

`messages_ingest` runs inside the tracking API's request and does only what must be durable before the 200:
decide which customer each call belongs to (creating, upgrading or merging profiles) and insert the events.
It costs a handful of set-based statements whatever the batch size. Everything the events imply for the
profiles — identify traits, email and name, account membership and traits, first/last seen — is applied by
`profiles_apply_events` in a Celery task queued when the transaction commits, so ingestion stays fast and
the profile work is batched.

Races between concurrent requests are settled by the database's unique constraints: new customers are
inserted with ON CONFLICT DO NOTHING and read back, events with ON CONFLICT (source, message_id) DO NOTHING
so a retried batch never stores anything twice, and the rare conflict left over (two requests giving the
same brand-new anonymous id its first profile, or an id this batch meant to join taken meanwhile) rolls the batch
back to be resolved again. Constraints cannot see a race between batches that join the same ids crosswise (A→B
and B→A, each creating a profile): on PostgreSQL a batch that joins ids for the first time takes advisory locks
on them, in one canonical order, before it reads anything, so such batches run one after the other.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import orjson
import psycopg
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone
from psycopg.types.numeric import Int8BinaryDumper, Int8Dumper

from audiences.merges import profile_rows_move
from audiences.models import (
    AnonymousId,
    Customer,
    Event,
    PendingEventBatch,
    ProfileMerge,
    Source,
)
from audiences.privacy.erase import erased_among
from audiences.profiles import display_name, traits_merge_newer
from audiences.tasks import profile_work_queue

logger = logging.getLogger(__name__)

RESOLUTION_ATTEMPTS = 4
# The first key of the two-key advisory locks on ids (the second is the id's hash): no other lock uses it.
IDENTITY_LOCK_SPACE = 18_001
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


@dataclass(eq=False)
class _Profile:
    """A customer as identity resolution sees it: its id (None until inserted) and user id."""

    pk: int | None
    user_id: str | None
    upgraded: bool = False  # an existing anonymous profile that received a user id in this batch

    @property
    def stored_pk(self) -> int:
        """The customer's id, once the profile is in the database."""
        assert self.pk is not None, "profile not inserted yet"
        return self.pk


def _postgres_rows(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Run a query on psycopg's own cursor: server-side binding, arrays sent in binary (the hot path).

    The few statements of the hot path are prepared on each connection (Django prepares none of its own) and
    run on their generic plans (config.env.database_config): planning them for every batch cost PostgreSQL
    about 0.8 ms of CPU per batch, a sixth of its share.
    DATABASE_PREPARED_STATEMENTS=false (config.env) turns this off: psycopg then ignores `prepare`.
    """
    connection.ensure_connection()
    # Django's wrapper turns psycopg's errors into its own (a deadlock into OperationalError, a unique violation into
    # IntegrityError), which messages_ingest retries.
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        # Every int as bigint: left to itself psycopg sends the smallest type that holds the values (smallint[] while
        # ids are below 32768, integer[] after), and each new type is another statement to prepare and plan.
        cursor.adapters.register_dumper(int, Int8BinaryDumper)
        cursor.adapters.register_dumper(int, Int8Dumper)
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall()


@dataclass
class _KnownIds:
    """What the database knows of a batch's ids: (customer id, user id) by user id, (anonymous id, customer
    id, that customer's user id) by linked anonymous id, and which of those customers this transaction has
    locked against deletion (FOR KEY SHARE; see _customers_still_there)."""

    by_user: list[tuple[int, str]]
    by_other: list[tuple[str, int, str | None]]
    locked: set[int]


def _known_ids(user_ids: set[str], other_ids: set[str]) -> _KnownIds:
    """The customers already known by these ids, in one round trip on PostgreSQL, locked there as they are read
    so that the batch's events can be stored against them with no second statement to check they still exist."""
    if not user_ids and not other_ids:
        return _KnownIds([], [], set())
    customer, link = Customer._meta.db_table, AnonymousId._meta.db_table
    if connection.vendor == "postgresql":
        # One row per known customer (anonymous id NULL) or per linked anonymous id (a customer found both ways
        # comes once per link); a customer merged away meanwhile is skipped once its deletion commits. Each id
        # is probed through its unique index: LATERAL … LIMIT 1 keeps the planner from scanning a small table
        # and comparing every row with the whole parameter array (milliseconds at a few thousand customers, and
        # what a generic plan of `= ANY(array)` does), and the MATERIALIZED owners keep it from joining the
        # links again for every customer. The same plan whatever the sizes, so the prepared statement fits all.
        sql = (
            "WITH links AS (SELECT wanted.anonymous_id, linked.customer_id"
            " FROM unnest(%b::text[]) AS wanted(anonymous_id) CROSS JOIN LATERAL"
            f" (SELECT customer_id FROM {link} WHERE anonymous_id = wanted.anonymous_id LIMIT 1) linked),"
            " found AS (SELECT known.id FROM unnest(%b::text[]) AS wanted(user_id) CROSS JOIN LATERAL"
            f" (SELECT id FROM {customer} WHERE user_id = wanted.user_id LIMIT 1) known"
            " UNION SELECT customer_id FROM links),"
            " owners AS MATERIALIZED (SELECT owner.id, owner.user_id FROM found CROSS JOIN LATERAL"
            f" (SELECT id, user_id FROM {customer} WHERE id = found.id FOR KEY SHARE) owner)"
            " SELECT owners.id, owners.user_id, links.anonymous_id FROM owners"
            " LEFT JOIN links ON links.customer_id = owners.id"
        )
        rows = _postgres_rows(sql, [list(other_ids), list(user_ids)])
        by_user = list({(pk, user_id) for pk, user_id, _ in rows if user_id is not None and user_id in user_ids})
        by_other = [(other_id, pk, user_id) for pk, user_id, other_id in rows if other_id is not None]
        return _KnownIds(by_user, by_other, {pk for pk, _, _ in rows})
    known_users = Customer.objects.filter(user_id__in=user_ids).values_list("pk", "user_id") if user_ids else []
    known_others: list[tuple[str, int, str | None]] = []
    if other_ids:
        links = AnonymousId.objects.filter(anonymous_id__in=other_ids)
        known_others = list(links.values_list("anonymous_id", "customer_id", "customer__user_id"))
    return _KnownIds([(pk, str(user_id)) for pk, user_id in known_users], known_others, set())


class _Resolver:
    """Maps every call of one batch to a profile, planning the creations, links and merges the ids demand."""

    def __init__(self, messages: list[IncomingMessage]) -> None:
        user_ids = {m.user_id for m in messages if m.user_id} | {m.previous_id for m in messages if m.previous_id}
        other_ids = {m.anonymous_id for m in messages if m.anonymous_id}
        other_ids |= {m.previous_id for m in messages if m.previous_id}
        self.by_pk: dict[int, _Profile] = {}
        self.by_user_id: dict[str, _Profile] = {}
        known = _known_ids(user_ids, other_ids)
        self.locked = known.locked
        for pk, user_id in known.by_user:
            self.by_user_id[user_id] = self.by_pk[pk] = _Profile(pk, user_id)
        self.by_other_id: dict[str, _Profile] = {}
        for other_id, pk, owner_user_id in known.by_other:
            self.by_other_id[other_id] = self.by_pk.setdefault(pk, _Profile(pk, owner_user_id))
        self.new_profiles: list[_Profile] = []
        self.new_links: dict[str, _Profile] = {}
        self.merges: list[tuple[_Profile, _Profile, IncomingMessage, str]] = []  # (merged, kept, message, id)
        self.refusals: list[tuple[_Profile, _Profile, IncomingMessage, str]] = []
        self.replaced: dict[int, _Profile] = {}  # id(merged profile) -> kept profile
        self.unknown_ids = (user_ids - self.by_user_id.keys()) | (other_ids - self.by_other_id.keys())
        # The ids of calls that join two ids in a way that changes identity (a new linked profile, a link, a
        # sign-in, a merge): what the batch must hold an identity lock on before it acts (see _lock_identities).
        self.joining_ids: set[str] = set()

    def live(self, profile: _Profile) -> _Profile:
        while id(profile) in self.replaced:
            profile = self.replaced[id(profile)]
        return profile

    def _new(self, user_id: str | None) -> _Profile:
        profile = _Profile(None, user_id)
        self.new_profiles.append(profile)
        if user_id:
            self.by_user_id[user_id] = profile
        return profile

    def _link(self, other_id: str, profile: _Profile) -> None:
        self.by_other_id[other_id] = self.new_links[other_id] = profile

    def resolve(self, message: IncomingMessage) -> _Profile:
        user_id = message.user_id
        other_id = message.previous_id if message.type == "alias" else message.anonymous_id
        by_user = self.live(self.by_user_id[user_id]) if user_id and user_id in self.by_user_id else None
        by_other = None
        if other_id:
            found = self.by_other_id.get(other_id)
            if found is None and message.type == "alias":
                found = self.by_user_id.get(other_id)  # alias may rename a known user id
            by_other = self.live(found) if found is not None else None

        if user_id is None:
            assert other_id is not None  # validation guarantees one of the two ids
            if by_other is None:
                by_other = self._new(None)
                self._link(other_id, by_other)
            return by_other
        if other_id is None or other_id == user_id:
            return by_user or self._new(user_id)
        if by_other is None or by_user is None or (by_other is not by_user and by_other.user_id is None):
            self.joining_ids |= {user_id, other_id}
        if by_user is None and by_other is None:
            profile = self._new(user_id)
            self._link(other_id, profile)
            return profile
        if by_user is None:
            assert by_other is not None
            if by_other.user_id is None or by_other.user_id == other_id:
                # An anonymous profile signs in, or alias renames a known user: the profile takes the user id
                # and the other id keeps pointing at it.
                by_other.user_id = user_id
                by_other.upgraded = by_other.pk is not None
                self.by_user_id[user_id] = by_other
                if other_id not in self.by_other_id:
                    self._link(other_id, by_other)
                return by_other
            profile = self._new(user_id)
            self.refusals.append((by_other, profile, message, other_id))
            return profile
        if by_other is None:
            self._link(other_id, by_user)
            return by_user
        if by_other is by_user:
            return by_user
        if by_other.user_id is None:
            self.merges.append((by_other, by_user, message, other_id))
            self.replaced[id(by_other)] = by_user
            return by_user
        self.refusals.append((by_other, by_user, message, other_id))
        return by_user


def _create_profiles(resolver: _Resolver, now: datetime) -> None:
    """Insert the planned customers; one that a concurrent request created first is read back instead."""
    # Sorted, so that concurrent batches take the unique-index locks in the same order and never deadlock.
    with_user_id = sorted((p for p in resolver.new_profiles if p.user_id), key=lambda p: str(p.user_id))
    anonymous = [p for p in resolver.new_profiles if not p.user_id]
    if with_user_id:
        Customer.objects.bulk_create(
            [Customer(user_id=p.user_id, created_at=now, updated_at=now) for p in with_user_id], ignore_conflicts=True
        )
        pks = dict(Customer.objects.filter(user_id__in=[p.user_id for p in with_user_id]).values_list("user_id", "pk"))
        for profile in with_user_id:
            profile.pk = pks[profile.user_id]
    if anonymous:
        created = Customer.objects.bulk_create([Customer(created_at=now, updated_at=now) for _ in anonymous])
        for profile, customer in zip(anonymous, created, strict=True):
            profile.pk = customer.pk
        if connection.vendor == "postgresql":
            # Rows this transaction inserted cannot be deleted by anyone else before it commits.
            resolver.locked.update(customer.pk for customer in created if customer.pk is not None)


def _link_other_ids(resolver: _Resolver, now: datetime) -> None:
    """Insert the new anonymous-id links. A link a concurrent request made first wins: a profile this batch
    created only for that id is dropped and its calls go to the winner's profile."""
    AnonymousId.objects.bulk_create(
        [
            AnonymousId(anonymous_id=other_id, customer_id=profile.stored_pk, created_at=now)
            for other_id, profile in sorted(resolver.new_links.items(), key=lambda item: item[0])
        ],
        ignore_conflicts=True,
    )
    stored = dict(
        AnonymousId.objects.filter(anonymous_id__in=list(resolver.new_links)).values_list("anonymous_id", "customer_id")
    )
    for other_id, profile in resolver.new_links.items():
        winner = stored[other_id]
        if winner == profile.pk:
            continue
        if profile.user_id is None and profile in resolver.new_profiles:
            Customer.objects.filter(pk=profile.stored_pk).delete()
            profile.pk = winner
            continue
        # The id was meant to join an identified profile, but a concurrent request gave it a profile first (e.g.
        # an anonymous call, which takes no identity lock): resolving again signs that profile in or merges it, as
        # if the two requests had come one after the other.
        raise IntegrityError(f"{other_id} was linked to another profile meanwhile")


def _merge(merged: _Profile, kept: _Profile, message: IncomingMessage, linking_id: str) -> None:
    """Fold an anonymous profile into the identified one: every related row moves (audiences.merges reconciles
    the few that collide with the kept profile's, by each model's rule), then it is deleted, and the merge is
    recorded with what moved and what was reconciled.

    The merged profile is locked first, so a concurrent batch that resolved to it either stored its events before
    (and they move with the rest) or finds it gone and resolves again (see _customers_still_there).
    """
    merged_customer = Customer.objects.select_for_update().get(pk=merged.stored_pk)
    kept_customer = Customer.objects.get(pk=kept.stored_pk)
    moved, reconciled = profile_rows_move(merged_pk=merged.stored_pk, kept_pk=kept.stored_pk)
    taken = traits_merge_newer(
        kept_customer.traits, kept_customer.trait_timestamps, merged_customer.traits, merged_customer.trait_timestamps
    )
    if "email" in taken and merged_customer.email:
        kept_customer.email = merged_customer.email
    kept_customer.email = kept_customer.email or merged_customer.email
    kept_customer.name = display_name(kept_customer.traits) or kept_customer.name or merged_customer.name
    kept_customer.account_id = kept_customer.account_id or merged_customer.account_id
    # Consent: a category either profile refused stays refused (a missing category means yes).
    for category, given in merged_customer.consent.items():
        kept_customer.consent[category] = bool(given) and bool(kept_customer.consent.get(category, True))
    seen = [kept_customer.first_seen_at, merged_customer.first_seen_at]
    kept_customer.first_seen_at = min((s for s in seen if s), default=None)
    seen = [kept_customer.last_seen_at, merged_customer.last_seen_at]
    kept_customer.last_seen_at = max((s for s in seen if s), default=None)
    kept_customer.save()
    ProfileMerge.objects.create(
        customer_id=kept.stored_pk,
        outcome=ProfileMerge.Outcome.MERGED,
        other_customer_id=merged.stored_pk,
        linking_id=linking_id,
        message_id=message.message_id,
        detail={
            "moved": moved,
            "reconciled": reconciled,
            "merged_traits": merged_customer.traits,
            "merged_email": merged_customer.email,
        },
    )
    merged_customer.delete()
    if merged_customer.stripe_customer_id and not kept_customer.stripe_customer_id:
        # The Stripe link is unique per profile, so it can only move once the merged profile is gone.
        Customer.objects.filter(pk=kept.stored_pk).update(stripe_customer_id=merged_customer.stripe_customer_id)


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
        return [row[0] for row in _postgres_rows(sql, [source.pk, *columns])]
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
        return len(_postgres_rows(sql, [list(customer_ids)])) == len(customer_ids)
    return Customer.objects.filter(pk__in=customer_ids).count() == len(customer_ids)


def _resolve(
    messages: list[IncomingMessage], result: IngestResult
) -> tuple[_Resolver, list[tuple[IncomingMessage, _Profile]]]:
    """Read what the database knows of the batch's ids and map each call (but those of erased people) to a profile."""
    resolver = _Resolver(messages)
    erased = erased_among(resolver.unknown_ids)  # only ids no profile holds can belong to an erased customer
    result.suppressed = 0
    if erased:
        allowed = [m for m in messages if not ({m.user_id, m.anonymous_id, m.previous_id} & erased)]
        result.suppressed = len(messages) - len(allowed)
        messages = allowed
        resolver = _Resolver(messages)
    return resolver, [(message, resolver.resolve(message)) for message in messages]


def _identity_lock_key(identifier: str) -> int:
    """A stable signed 32-bit key for an id (the same in every process, unlike hash())."""
    return int.from_bytes(hashlib.blake2b(identifier.encode(), digest_size=4).digest(), "big", signed=True)


def _lock_identities(identifiers: set[str]) -> None:
    """Transaction-scoped PostgreSQL advisory locks on these ids, all in one statement in one canonical order
    (sorted keys), so that two batches joining the same ids — A→B here, B→A there — run one after the other
    instead of each creating a profile, and never deadlock on each other. An id is locked whatever it names (user
    id, anonymous or previous id): the race crosses the two namespaces."""
    keys = sorted({_identity_lock_key(identifier) for identifier in identifiers})
    _postgres_rows(
        "SELECT pg_advisory_xact_lock(%b::integer, key) FROM unnest(%b::integer[]) AS keys(key)",
        [IDENTITY_LOCK_SPACE, keys],
    )


class _IdentityLocksNeeded(Exception):
    """The batch joins ids it holds no identity lock on: start again, taking these locks first."""

    def __init__(self, identifiers: set[str]) -> None:
        super().__init__(f"{len(identifiers)} ids to lock")
        self.identifiers = identifiers


def _ingest_once(
    source: Source, messages: list[IncomingMessage], result: IngestResult, identity_locks: set[str]
) -> None:
    now = timezone.now()
    if identity_locks:
        _lock_identities(identity_locks)  # before anything else, so they are never waited for holding a row lock
    resolver, resolved = _resolve(messages, result)
    if connection.vendor == "postgresql" and resolver.joining_ids - identity_locks:
        # Only calls that join two ids for the first time (a new pair, a sign-in, a merge) get here, so the hot
        # path rarely pays for the second reading. SQLite's IMMEDIATE transactions run one batch at a time.
        raise _IdentityLocksNeeded(identity_locks | resolver.joining_ids)

    _create_profiles(resolver, now)
    upgraded = [p for p in resolver.by_pk.values() if p.upgraded]
    for profile in upgraded:
        Customer.objects.filter(pk=profile.stored_pk).update(user_id=profile.user_id, updated_at=now)
    if resolver.new_links:
        _link_other_ids(resolver, now)
    for merged, kept, message, linking_id in resolver.merges:
        _merge(merged, kept, message, linking_id)
    for conflicting, kept, message, linking_id in resolver.refusals:
        ProfileMerge.objects.create(
            customer_id=kept.stored_pk,
            outcome=ProfileMerge.Outcome.REFUSED,
            other_customer_id=conflicting.stored_pk,
            linking_id=linking_id,
            message_id=message.message_id,
            detail={"reason": f"{linking_id} belongs to user {conflicting.user_id}, this call to {kept.user_id}"},
        )

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
    A batch that turns out to join ids (see _Resolver.joining_ids) starts again holding identity locks on them
    (_lock_identities); a lost race (a deadlock, a constraint) resolves it again, up to RESOLUTION_ATTEMPTS times.
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
        except _IdentityLocksNeeded as needed:
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
