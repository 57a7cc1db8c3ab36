"""GDPR erasure: delete a customer and every row about them, redact them wherever else they are named, and
tombstone their ids so later calls under them do not recreate the profile; all in one transaction, with files
rewritten aside and swapped in once it commits.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from audiences.models import AnonymousId, Customer, CustomerErasure, ErasedIdentity
from audiences.privacy.relations import customer_relations
from audiences.privacy.rules import Action, FileRewrite, erasure_rules, file_sweepers, rule_matches
from audiences.privacy.traces import person_traces

# Who may erase: it cannot be undone, so it needs the delete permission only the Admin role holds.
ERASE_PERMISSION = "audiences.delete_customer"


def identity_digest(value: str) -> str:
    """The keyed digest a tombstone stores for an id (keyed so a list of digests cannot be reversed by guessing)."""
    return hmac.new(settings.SECRET_KEY.encode(), value.encode(), hashlib.sha256).hexdigest()


def erased_among(ids: Collection[str]) -> set[str]:
    """Which of these ids belong to erased customers whose later calls must be suppressed (no query for none)."""
    if not ids:
        return set()
    digests = {identity_digest(value): value for value in ids}
    found = ErasedIdentity.objects.filter(digest__in=list(digests)).values_list("digest", flat=True)
    return {digests[digest] for digest in found}


class AlreadyErased(Exception):
    """The customer was erased by another request (or command) since it was looked up."""


@dataclass(frozen=True)
class ErasureReport:
    """What an erasure deleted and redacted, per model label, and the record kept of it."""

    deleted_rows: dict[str, int]
    redacted_rows: dict[str, int]
    erasure: CustomerErasure


def _files_swap(rewrites: list[FileRewrite]) -> None:
    for rewrite in rewrites:
        os.replace(rewrite.prepared, rewrite.path)


def _files_discard(rewrites: list[FileRewrite]) -> None:
    for rewrite in rewrites:
        with contextlib.suppress(FileNotFoundError):
            rewrite.prepared.unlink()


def customer_erase(
    *,
    customer: Customer,
    actor: AbstractBaseUser | AnonymousUser | None,
    via: str,
    suppress_future_events: bool = True,
    now: datetime | None = None,
) -> ErasureReport:
    """Delete the customer and every row about them, and redact them wherever else they are named, in one
    transaction.

    First the traces (ids, emails, names) are read from the person's own rows; then the rows registered rules
    own are deleted and every searched model's mentions are redacted (or deleted); then the foreign-key walk
    deletes the related rows deepest first, and the profile. Files naming the person are rewritten aside and
    swapped in once the transaction commits. With `suppress_future_events`, the customer's user id and anonymous
    ids are tombstoned so a product that keeps sending calls under them does not recreate the profile. The
    erasure itself is recorded without personal data (the former row id, counts per model, who and when).
    """
    now = now or timezone.now()
    rewrites: list[FileRewrite] = []
    try:
        with transaction.atomic():
            locked = Customer.objects.select_for_update().filter(pk=customer.pk).first()
            if locked is None:  # a second, simultaneous request waited on the lock for the first to erase the row
                raise AlreadyErased(f"Customer {customer.pk} was already erased.")
            ids: list[tuple[str, str]] = []
            if locked.user_id:
                ids.append((ErasedIdentity.Kind.USER_ID, locked.user_id))
            anonymous = AnonymousId.objects.filter(customer=locked).values_list("anonymous_id", flat=True)
            ids += [(ErasedIdentity.Kind.ANONYMOUS_ID, value) for value in anonymous]
            traces = person_traces(locked)

            deleted: dict[str, int] = {}
            redacted: dict[str, int] = {}

            def count(result: tuple[int, dict[str, int]]) -> None:
                for label, number in result[1].items():
                    if number:
                        deleted[label] = deleted.get(label, 0) + number

            for rule in erasure_rules():
                if rule.owned is not None:
                    count(rule.owned(traces).delete())
                matched = list(rule_matches(rule, traces))
                if not matched:
                    continue
                if rule.action == Action.DELETE:
                    count(rule.model._default_manager.filter(pk__in=[row.pk for row, _ in matched]).delete())
                    continue
                for row, changes in matched:
                    rule.model._default_manager.filter(pk=row.pk).update(**changes)
                redacted[rule.label] = len(matched)
            for relation in sorted(customer_relations(), key=lambda relation: -relation.depth):
                count(relation.model._default_manager.filter(**{relation.path: locked.pk}).delete())
            count(Customer.objects.filter(pk=locked.pk).delete())
            for sweeper in file_sweepers():
                swept = sweeper(traces)
                rewrites += swept
                for rewrite in swept:
                    redacted[rewrite.label] = redacted.get(rewrite.label, 0) + 1

            if suppress_future_events and ids:
                ErasedIdentity.objects.bulk_create(
                    [ErasedIdentity(digest=identity_digest(value), kind=kind, erased_at=now) for kind, value in ids],
                    ignore_conflicts=True,
                )
            erasure = CustomerErasure.objects.create(
                customer_pk=customer.pk,
                erased_at=now,
                erased_by=actor if isinstance(actor, get_user_model()) else None,
                via=via,
                suppress_future_events=suppress_future_events,
                deleted_rows=deleted,
                redacted_rows=redacted,
            )
            transaction.on_commit(partial(_files_swap, rewrites))
    except BaseException:
        _files_discard(rewrites)
        raise
    return ErasureReport(deleted_rows=deleted, redacted_rows=redacted, erasure=erasure)
