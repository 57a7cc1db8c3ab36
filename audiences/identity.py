"""Identity resolution for a batch of tracked calls: which customer each call belongs to, and the profile
creations, anonymous-id links, merges and refused merges the ids demand, planned in memory (`Resolver`) and then
written in a handful of set-based statements (`identities_apply`).

Races between concurrent requests are settled by the database's unique constraints: new customers are inserted
with ON CONFLICT DO NOTHING and read back, and the rare conflict left over (two requests giving the same
brand-new anonymous id its first profile, or an id this batch meant to join taken meanwhile) rolls the batch
back to be resolved again (audiences.ingestion retries). Constraints cannot see a race between batches that join
the same ids crosswise (A→B and B→A, each creating a profile): on PostgreSQL a batch that joins ids for the first
time takes advisory locks on them (`identities_lock`), in one canonical order, before it reads anything, so such
batches run one after the other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from django.db import IntegrityError, connection

from audiences.merges import profile_rows_move
from audiences.models import AnonymousId, Customer, ProfileMerge
from audiences.prepared import postgres_rows
from audiences.profiles import display_name, traits_merge_newer

# The first key of the two-key advisory locks on ids (the second is the id's hash): no other lock uses it.
IDENTITY_LOCK_SPACE = 18_001


class Call(Protocol):
    """What resolution reads of a call: its ids (audiences.ingestion.IncomingMessage has them)."""

    type: str
    message_id: str
    user_id: str | None
    anonymous_id: str | None
    previous_id: str | None


@dataclass(eq=False)
class Profile:
    """A customer as identity resolution sees it: its id (None until inserted) and user id."""

    pk: int | None
    user_id: str | None
    upgraded: bool = False  # an existing anonymous profile that received a user id in this batch

    @property
    def stored_pk(self) -> int:
        """The customer's id, once the profile is in the database."""
        assert self.pk is not None, "profile not inserted yet"
        return self.pk


@dataclass
class _KnownIds:
    """What the database knows of a batch's ids: (customer id, user id) by user id, (anonymous id, customer
    id, that customer's user id) by linked anonymous id, and which of those customers this transaction has
    locked against deletion (FOR KEY SHARE; see audiences.ingestion._customers_still_there)."""

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
        rows = postgres_rows(sql, [list(other_ids), list(user_ids)])
        by_user = list({(pk, user_id) for pk, user_id, _ in rows if user_id is not None and user_id in user_ids})
        by_other = [(other_id, pk, user_id) for pk, user_id, other_id in rows if other_id is not None]
        return _KnownIds(by_user, by_other, {pk for pk, _, _ in rows})
    known_users = Customer.objects.filter(user_id__in=user_ids).values_list("pk", "user_id") if user_ids else []
    known_others: list[tuple[str, int, str | None]] = []
    if other_ids:
        links = AnonymousId.objects.filter(anonymous_id__in=other_ids)
        known_others = list(links.values_list("anonymous_id", "customer_id", "customer__user_id"))
    return _KnownIds([(pk, str(user_id)) for pk, user_id in known_users], known_others, set())


class Resolver:
    """Maps every call of one batch to a profile, planning the creations, links and merges the ids demand."""

    def __init__(self, messages: Sequence[Call]) -> None:
        user_ids = {m.user_id for m in messages if m.user_id} | {m.previous_id for m in messages if m.previous_id}
        other_ids = {m.anonymous_id for m in messages if m.anonymous_id}
        other_ids |= {m.previous_id for m in messages if m.previous_id}
        self.by_pk: dict[int, Profile] = {}
        self.by_user_id: dict[str, Profile] = {}
        known = _known_ids(user_ids, other_ids)
        self.locked = known.locked
        for pk, user_id in known.by_user:
            self.by_user_id[user_id] = self.by_pk[pk] = Profile(pk, user_id)
        self.by_other_id: dict[str, Profile] = {}
        for other_id, pk, owner_user_id in known.by_other:
            self.by_other_id[other_id] = self.by_pk.setdefault(pk, Profile(pk, owner_user_id))
        self.new_profiles: list[Profile] = []
        self.new_links: dict[str, Profile] = {}
        self.merges: list[tuple[Profile, Profile, Call, str]] = []  # (merged, kept, message, id)
        self.refusals: list[tuple[Profile, Profile, Call, str]] = []
        self.replaced: dict[int, Profile] = {}  # id(merged profile) -> kept profile
        self.unknown_ids = (user_ids - self.by_user_id.keys()) | (other_ids - self.by_other_id.keys())
        # The ids of calls that join two ids in a way that changes identity (a new linked profile, a link, a
        # sign-in, a merge): what the batch must hold an identity lock on before it acts (see identities_lock).
        self.joining_ids: set[str] = set()

    def live(self, profile: Profile) -> Profile:
        while id(profile) in self.replaced:
            profile = self.replaced[id(profile)]
        return profile

    def _new(self, user_id: str | None) -> Profile:
        profile = Profile(None, user_id)
        self.new_profiles.append(profile)
        if user_id:
            self.by_user_id[user_id] = profile
        return profile

    def _link(self, other_id: str, profile: Profile) -> None:
        self.by_other_id[other_id] = self.new_links[other_id] = profile

    def resolve(self, message: Call) -> Profile:
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


def profiles_create(resolver: Resolver, now: datetime) -> None:
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


def other_ids_link(resolver: Resolver, now: datetime) -> None:
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


def _merge(merged: Profile, kept: Profile, message: Call, linking_id: str) -> None:
    """Fold an anonymous profile into the identified one: every related row moves (audiences.merges reconciles
    the few that collide with the kept profile's, by each model's rule), then it is deleted, and the merge is
    recorded with what moved and what was reconciled.

    The merged profile is locked first, so a concurrent batch that resolved to it either stored its events before
    (and they move with the rest) or finds it gone and resolves again (see audiences.ingestion._customers_still_there).
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


def identities_apply(resolver: Resolver, now: datetime) -> None:
    """Write what the resolver planned: new profiles, sign-ins, new links, merges and refused merges."""
    profiles_create(resolver, now)
    upgraded = [p for p in resolver.by_pk.values() if p.upgraded]
    for profile in upgraded:
        Customer.objects.filter(pk=profile.stored_pk).update(user_id=profile.user_id, updated_at=now)
    if resolver.new_links:
        other_ids_link(resolver, now)
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


def _identity_lock_key(identifier: str) -> int:
    """A stable signed 32-bit key for an id (the same in every process, unlike hash())."""
    return int.from_bytes(hashlib.blake2b(identifier.encode(), digest_size=4).digest(), "big", signed=True)


def identities_lock(identifiers: set[str]) -> None:
    """Transaction-scoped PostgreSQL advisory locks on these ids, all in one statement in one canonical order
    (sorted keys), so that two batches joining the same ids — A→B here, B→A there — run one after the other
    instead of each creating a profile, and never deadlock on each other. An id is locked whatever it names (user
    id, anonymous or previous id): the race crosses the two namespaces."""
    keys = sorted({_identity_lock_key(identifier) for identifier in identifiers})
    postgres_rows(
        "SELECT pg_advisory_xact_lock(%b::integer, key) FROM unnest(%b::integer[]) AS keys(key)",
        [IDENTITY_LOCK_SPACE, keys],
    )


class IdentityLocksNeeded(Exception):
    """The batch joins ids it holds no identity lock on: start again, taking these locks first."""

    def __init__(self, identifiers: set[str]) -> None:
        super().__init__(f"{len(identifiers)} ids to lock")
        self.identifiers = identifiers
