"""Reads on profiles and events, shaped for the staff UI and the API (few queries, no full counts)."""

from __future__ import annotations

import hmac
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, F, Model, Q, QuerySet
from django.utils import timezone

from audiences.models import Account, ComputedTrait, ComputedTraitChange, ComputedTraitValue, Customer, Event, Source
from audiences.panels import customer_query_with_panels
from audiences.services import SECRET_KEY_OVERLAP, auth_hash, key_digest

EXACT_COUNT_BELOW = 100_000
SOURCE_CACHE_SECONDS = 2.0

# write-key digest -> (time.monotonic() when read, source): see source_for_write_key.
_sources_by_digest: dict[str, tuple[float, Source]] = {}


def estimated_row_count(model: type[Model]) -> int:
    """Rows in a table without a full COUNT(*) on big tables.

    PostgreSQL's planner statistics answer in microseconds; below EXACT_COUNT_BELOW rows (or on SQLite)
    an exact count is cheap enough and is used instead.
    """
    table = model._meta.db_table
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
            row = cursor.fetchone()
        estimate = int(row[0]) if row else -1
        if estimate >= EXACT_COUNT_BELOW:
            return estimate
    return model._default_manager.count()


def profile_figures() -> dict[str, int]:
    """The dashboard's profile figures (registered in config.figures): customers (estimated) and events in
    the last 24 hours. Two queries."""
    since = timezone.now() - timedelta(hours=24)
    return {
        "customers": estimated_row_count(Customer),
        "events_24h": Event.objects.filter(timestamp__gte=since).count(),
    }


def source_for_write_key(write_key: str) -> Source | None:
    """The active source a write key belongs to, or None.

    Every tracking call authenticates, and building this query costs more CPU than the rest of a small call:
    a source found is kept in this process for SOURCE_CACHE_SECONDS. Saving or deleting a source or its
    tracking plan empties the cache of the process that did it at once (source_cache_clear); other processes
    see a rotated key, a deactivation or a plan edit within SOURCE_CACHE_SECONDS. Unknown keys are not kept,
    so a flood of wrong keys cannot grow the cache.
    """
    digest = key_digest(write_key)
    cached = _sources_by_digest.get(digest)
    now = time.monotonic()
    if cached is not None and now - cached[0] < SOURCE_CACHE_SECONDS:
        return cached[1]
    sources = Source.objects.filter(write_key_hash=digest, is_active=True)
    # The tracking plan (integrations) rides along so enforcement costs no second query.
    source = sources.select_related("tracking_plan_link__plan").first()
    if source is not None:
        _sources_by_digest[digest] = (now, source)
    else:
        _sources_by_digest.pop(digest, None)
    return source


def source_for_secret_key(secret_key: str, *, now: datetime | None = None) -> Source | None:
    """The active source a secret key belongs to — its current key, or the previous one within
    SECRET_KEY_OVERLAP of the rotation — or None. Read from the database every time (not cached like write
    keys): a rotation or deactivation counts at once."""
    now = now or timezone.now()
    digest = key_digest(secret_key)
    current = Q(secret_key_digest=digest)
    previous = Q(previous_secret_key_digest=digest, secret_rotated_at__gt=now - SECRET_KEY_OVERLAP)
    return Source.objects.filter(current | previous, is_active=True).first()


def source_secret_keys(source_id: int, *, now: datetime | None = None) -> list[str]:
    """The secret keys of a source that prove a caller now: the current one, and the previous one within
    SECRET_KEY_OVERLAP of the rotation. Read from the database, not from a cached Source."""
    now = now or timezone.now()
    row = Source.objects.filter(pk=source_id).values_list("secret_key", "previous_secret_key", "secret_rotated_at")
    found = row.first()
    if found is None:
        return []
    current, previous, rotated_at = found
    keys = [current] if current else []
    if previous and rotated_at is not None and now - rotated_at < SECRET_KEY_OVERLAP:
        keys.append(previous)
    return keys


def auth_hash_matches(source_id: int, user_id: str, candidate: str, *, now: datetime | None = None) -> bool:
    """Whether `candidate` is the HMAC-SHA256 of `user_id` under one of the source's valid secret keys (hex,
    either case), compared in constant time."""
    given = candidate.strip().lower().encode()
    matches = [
        hmac.compare_digest(auth_hash(key, user_id).encode(), given) for key in source_secret_keys(source_id, now=now)
    ]
    return any(matches)


def source_cache_clear(**_signal_arguments: Any) -> None:
    """Forget the sources source_for_write_key keeps (connected to saves and deletions of sources and plans)."""
    _sources_by_digest.clear()


def customer_list() -> QuerySet[Customer]:
    """Customers newest first, with their account joined (one query per page)."""
    return Customer.objects.select_related("account").order_by("-id")


def customer_detail(customer_id: int) -> Customer:
    """One customer with account, anonymous ids and identity merges, and what the page's panels add to the query
    (audiences.panels: subscriptions, the current trial's id)."""
    customers = Customer.objects.select_related("account").prefetch_related("anonymous_ids", "merges")
    return customer_query_with_panels(customers).get(pk=customer_id)


def customer_events(customer_id: int) -> QuerySet[Event]:
    """A customer's timeline, newest first (served by the (customer, -timestamp) index)."""
    return Event.objects.filter(customer_id=customer_id).select_related("source").order_by("-timestamp", "-id")


def account_list() -> QuerySet[Account]:
    """Accounts by name with their owner joined."""
    return Account.objects.select_related("owner").order_by("name", "id")


def account_list_with_seats() -> QuerySet[Account]:
    """Accounts with their number of member customers (one grouped query per page)."""
    return account_list().annotate(seats=Count("members"))


def account_members(account_id: int) -> QuerySet[Customer]:
    """An account's members, most recently active first."""
    return Customer.objects.filter(account_id=account_id).order_by(F("last_seen_at").desc(nulls_last=True), "id")


# --- computed traits ---------------------------------------------------------------------------------------


def customer_computed_values(customer_id: int) -> list[ComputedTraitValue]:
    """A customer's computed trait values with their definitions (one query), by trait key."""
    return list(
        ComputedTraitValue.objects.filter(customer_id=customer_id).select_related("trait").order_by("trait__key")
    )


def customer_computed_changes(customer_id: int, *, limit: int = 10) -> list[ComputedTraitChange]:
    """A customer's latest computed trait changes with their definitions (one query, the (customer, -at) index)."""
    return list(
        ComputedTraitChange.objects.filter(customer_id=customer_id)
        .select_related("trait")
        .order_by("-at", "-id")[:limit]
    )


def trait_value_text(kind: str, value: Any, *, now: datetime | None = None) -> str:
    """A computed trait value as staff read it: numbers without a needless ".0", lists joined, and time-based
    kinds (stored as a moment) as the date with the days since or left."""
    if value is None:
        return "—"
    if kind in (ComputedTrait.Kind.DAYS_SINCE_LAST, ComputedTrait.Kind.TRIAL_DAYS_REMAINING):
        moment = value if isinstance(value, datetime) else _moment(value)
        if moment is None:
            return str(value)
        now = now or timezone.now()
        day = f"{moment:%b} {moment.day}, {moment.year}"
        if kind == ComputedTrait.Kind.DAYS_SINCE_LAST:
            return f"{day} ({(now - moment).days} days ago)"
        return f"{day} ({max((moment - now).days, 0)} days left)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}".rstrip("0")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) if value else "(none)"
    return str(value)


def _moment(value: Any) -> datetime | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
