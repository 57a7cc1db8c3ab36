"""Applying stored events to profiles: traits (newest value wins, whatever the arrival order), accounts from
group calls, display names, first/last seen — the first step of a stored batch's worker transaction
(audiences.pipeline)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from django.db import connection, transaction
from django.db.models import Q

from audiences.models import Account, Customer, Event


def display_name(traits: dict[str, Any]) -> str:
    name = traits.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    first = traits.get("first_name") or traits.get("firstName") or ""
    last = traits.get("last_name") or traits.get("lastName") or ""
    return f"{first} {last}".strip() if isinstance(first, str) and isinstance(last, str) else ""


def _seen_times_update(event_ids: list[int]) -> None:
    """First/last seen of every customer the events touched, in one set-based UPDATE that only moves outward."""
    customer, event = Customer._meta.db_table, Event._meta.db_table
    placeholders = ", ".join(["%s"] * len(event_ids))
    sql = f"""
        UPDATE {customer} SET
            first_seen_at = CASE WHEN first_seen_at IS NULL OR seen.first < first_seen_at
                                 THEN seen.first ELSE first_seen_at END,
            last_seen_at = CASE WHEN last_seen_at IS NULL OR seen.last > last_seen_at
                                THEN seen.last ELSE last_seen_at END
        FROM (SELECT customer_id, MIN(timestamp) AS first, MAX(timestamp) AS last
              FROM {event} WHERE id IN ({placeholders}) GROUP BY customer_id) AS seen
        WHERE {customer}.id = seen.customer_id
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, event_ids)


def _trait_stamp(event: dict[str, Any]) -> list[Any]:
    """When an event set a trait, as stored in trait_timestamps: [event time in UTC (ISO 8601, microseconds),
    event id]. Such lists compare in time order (the id breaks ties: the later stored wins)."""
    return [event["timestamp"].astimezone(UTC).isoformat(timespec="microseconds"), event["id"]]


def _newer(stamp: list[Any] | None, than: list[Any] | None) -> bool:
    """Whether a trait set at `stamp` replaces one set at `than` (a trait without a stamp is the oldest)."""
    if stamp is None:
        return False
    return than is None or tuple(stamp) >= tuple(than)


def _traits_set_newer(
    traits: dict[str, Any], stamps: dict[str, Any], incoming: dict[str, Any], stamp: list[Any]
) -> dict[str, Any]:
    """Set each incoming trait unless the stored value came from a later event (last write wins by event time, per
    trait, whatever order batches arrive or are re-run in); updates `traits` and `stamps` in place and returns the
    traits it set."""
    applied = {key: value for key, value in incoming.items() if _newer(stamp, stamps.get(key))}
    traits.update(applied)
    stamps.update(dict.fromkeys(applied, stamp))
    return applied


def traits_merge_newer(
    traits: dict[str, Any], stamps: dict[str, Any], other: dict[str, Any], other_stamps: dict[str, Any]
) -> set[str]:
    """Fold another profile's traits in (a merge): each trait takes the newer of the two values, a trait only the
    other has is added; with no stamp on either side the kept value stays. Returns the traits taken from the other."""
    taken = {
        key
        for key in other
        if key not in traits or (key in other_stamps and _newer(other_stamps[key], stamps.get(key)))
    }
    traits.update({key: other[key] for key in taken})
    stamps.update({key: other_stamps[key] for key in taken if key in other_stamps})
    return taken


@transaction.atomic
def profiles_apply_events(*, event_ids: list[int]) -> int:
    """Apply what stored events say about their customers: traits, email, name, accounts, first/last seen.

    Each identify or group trait remembers when the event that set it happened (trait_timestamps on the customer
    or account) and only a newer event replaces it, so a late batch, or a batch whose task runs again after a
    redelivery, never puts back an older value. Customers are locked in id order, so concurrent runs cannot
    deadlock. Idempotent: applying the same events twice leaves the same profiles. Returns how many customers
    identify or group calls touched.
    """
    if not event_ids:
        return 0
    _seen_times_update(event_ids)
    profile_events: list[dict[str, Any]] = [
        dict(row)
        for row in Event.objects.filter(Q(type=Event.Type.IDENTIFY) | ~Q(group_id=""), pk__in=event_ids)
        .order_by("timestamp", "id")
        .values("id", "customer_id", "type", "group_id", "properties", "timestamp")
    ]
    if not profile_events:
        return 0
    customer_ids = sorted({e["customer_id"] for e in profile_events})
    customers = {c.pk: c for c in Customer.objects.select_for_update().filter(pk__in=customer_ids).order_by("pk")}
    accounts = _accounts_for(profile_events)
    for event in profile_events:
        customer = customers.get(event["customer_id"])
        if customer is None:
            continue
        if event["type"] == Event.Type.IDENTIFY and event["properties"]:
            applied = _traits_set_newer(
                customer.traits, customer.trait_timestamps, event["properties"], _trait_stamp(event)
            )
            email = applied.get("email")
            if isinstance(email, str) and email.strip():
                customer.email = email.strip().lower()[:254]
            customer.name = (display_name(customer.traits) or customer.name)[:255]
        if event["group_id"] in accounts:
            customer.account_id = accounts[event["group_id"]].pk
    for customer in customers.values():
        customer.save(update_fields=["traits", "trait_timestamps", "email", "name", "account", "updated_at"])
    return len(customers)


def _accounts_for(profile_events: list[dict[str, Any]]) -> dict[str, Account]:
    """Upsert the accounts the events name; group calls set their traits on the account, the newer value winning
    per trait (_traits_set_newer)."""
    group_ids = {e["group_id"] for e in profile_events if e["group_id"]}
    if not group_ids:
        return {}
    Account.objects.bulk_create([Account(group_id=g) for g in group_ids], ignore_conflicts=True)
    accounts = {a.group_id: a for a in Account.objects.select_for_update().filter(group_id__in=group_ids)}
    changed: set[str] = set()
    for event in profile_events:
        if event["type"] != Event.Type.GROUP:
            continue
        group_id = event["group_id"]
        account = accounts.get(group_id)
        if account is None or not event["properties"]:
            continue
        traits = _traits_set_newer(account.traits, account.trait_timestamps, event["properties"], _trait_stamp(event))
        if isinstance(traits.get("name"), str):
            account.name = traits["name"][:255]
        domain = traits.get("domain") or traits.get("website")
        if isinstance(domain, str):
            account.domain = domain.removeprefix("https://").removeprefix("http://").strip("/")[:255]
        changed.add(group_id)
    for group_id in changed:
        accounts[group_id].save(update_fields=["traits", "trait_timestamps", "name", "domain", "updated_at"])
    return accounts
