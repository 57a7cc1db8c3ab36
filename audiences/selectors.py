"""Reads on profiles and events, shaped for the staff UI and the API (few queries, no full counts)."""

from __future__ import annotations

from django.db import connection
from django.db.models import Count, F, Model, Prefetch, QuerySet

from audiences.models import Account, Customer, Event, Source
from audiences.services import write_key_digest
from trials.models import Subscription

EXACT_COUNT_BELOW = 100_000


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


def source_for_write_key(write_key: str) -> Source | None:
    """The active source a write key belongs to, or None."""
    sources = Source.objects.filter(write_key_hash=write_key_digest(write_key), is_active=True)
    # The tracking plan (integrations) rides along so enforcement costs no second query.
    return sources.select_related("tracking_plan_link__plan").first()


def customer_list() -> QuerySet[Customer]:
    """Customers newest first, with their account joined (one query per page)."""
    return Customer.objects.select_related("account").order_by("-id")


def customer_detail(customer_id: int) -> Customer:
    """One customer with account, anonymous ids, identity merges and subscriptions (plan, product, add-ons)."""
    subscriptions = Subscription.objects.select_related("plan__product").prefetch_related("add_on_items__add_on")
    return (
        Customer.objects.select_related("account")
        .prefetch_related(
            "anonymous_ids",
            "merges",
            Prefetch("subscriptions", queryset=subscriptions.order_by("-started_at")),
        )
        .get(pk=customer_id)
    )


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
