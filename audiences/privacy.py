"""GDPR: export everything held about one customer, and erase a customer everywhere.

Both walk the model graph instead of a hand-kept list: every model with a foreign-key path to Customer (directly,
or through a subscription, trial, session, ...) is found at run time, so a model added later is exported and
erased without anyone remembering to add it here — and the completeness test walks the same graph. Rows tied to a
customer only by an outside id (Stripe events by Stripe customer id) are added explicitly below.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from audiences.models import Account, AnonymousId, Customer, CustomerErasure, ErasedIdentity, ProfileMerge

# Models a path may not pass through: they are shared by many customers, so reaching a row through them does
# not make the row this customer's (an account's other members, a segment's other members, ...).
_SHARED_MODELS = {"audiences.Account", "audiences.Source", "segments.Segment", "audiences.ComputedTrait"}
_MAX_DEPTH = 3
# Who may do what: exporting is part of answering an access request (CS, Growth, Admin: whoever may edit
# customers); erasing cannot be undone, so it needs the delete permission only the Admin role holds.
EXPORT_PERMISSION = "audiences.change_customer"
ERASE_PERMISSION = "audiences.delete_customer"


@dataclass(frozen=True)
class CustomerRelation:
    """One model whose rows belong to a customer, and the ORM lookup from that model to the customer's id."""

    model: type[models.Model]
    path: str

    @property
    def label(self) -> str:
        return self.model._meta.label

    @property
    def depth(self) -> int:
        return self.path.count("__") + 1


def _forward_relations(model: type[models.Model]) -> Iterable[models.ForeignKey[Any, Any]]:
    for field in model._meta.concrete_fields:
        if isinstance(field, models.ForeignKey) and field.remote_field is not None:
            yield field


def _path_to_customer(model: type[models.Model], depth: int = _MAX_DEPTH) -> str | None:
    """The shortest lookup path (`customer`, `subscription__customer`, ...) from model to Customer, if any."""
    frontier: list[tuple[type[models.Model], str]] = [(model, "")]
    for _ in range(depth):
        next_frontier: list[tuple[type[models.Model], str]] = []
        for current, prefix in frontier:
            for field in _forward_relations(current):
                target = field.related_model
                if not isinstance(target, type):
                    continue
                path = f"{prefix}{field.name}"
                if target is Customer:
                    return path
                if target._meta.label in _SHARED_MODELS or target is model:
                    continue
                next_frontier.append((target, f"{path}__"))
        frontier = next_frontier
    return None


def customer_relations() -> list[CustomerRelation]:
    """Every concrete model holding rows of one customer, shallowest path first."""
    relations: list[CustomerRelation] = []
    for model in apps.get_models():
        if model is Customer or model._meta.proxy or model is Account:
            continue
        path = _path_to_customer(model)
        if path is not None:
            relations.append(CustomerRelation(model=model, path=path))
    return sorted(relations, key=lambda relation: (relation.depth, relation.label))


def _stripe_events(customer: Customer) -> models.QuerySet[Any]:
    """Stripe events about this customer's Stripe customers: they carry names, emails and addresses."""
    from integrations.models import StripeEvent
    from trials.models import StripeCustomer

    stripe_ids = set(StripeCustomer.objects.filter(customer=customer).values_list("stripe_customer_id", flat=True))
    if customer.stripe_customer_id:
        stripe_ids.add(customer.stripe_customer_id)
    return StripeEvent.objects.filter(stripe_customer_id__in=stripe_ids) if stripe_ids else StripeEvent.objects.none()


def _rows(queryset: models.QuerySet[Any]) -> list[dict[str, Any]]:
    return list(queryset.order_by("pk").values())


def customer_export(customer: Customer) -> dict[str, Any]:
    """Everything held about the customer as JSON-ready data: the profile, then each related model's rows.

    One query per related model (the export of a single person, not a bulk path). Values are made JSON-safe
    with Django's encoder (dates, decimals, UUIDs).
    """
    data: dict[str, Any] = {
        "exported_at": timezone.now(),
        "customer": _rows(Customer.objects.filter(pk=customer.pk))[0],
        "records": {},
    }
    if customer.account_id is not None:
        data["account"] = _rows(Account.objects.filter(pk=customer.account_id))[0]
    records: dict[str, list[dict[str, Any]]] = data["records"]
    for relation in customer_relations():
        rows = _rows(relation.model._default_manager.filter(**{relation.path: customer.pk}))
        if rows:
            records[relation.label] = rows
    stripe_events = _rows(_stripe_events(customer))
    if stripe_events:
        records["integrations.StripeEvent"] = stripe_events
    safe: dict[str, Any] = _json_safe(data, DjangoJSONEncoder())
    return safe


def _json_safe(value: Any, encoder: DjangoJSONEncoder) -> Any:
    if isinstance(value, dict):
        return {str(key): _json_safe(item, encoder) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item, encoder) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return encoder.default(value)


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
    """What an erasure deleted, per model label, and the record kept of it."""

    deleted_rows: dict[str, int]
    erasure: CustomerErasure


def customer_erase(
    *,
    customer: Customer,
    actor: AbstractBaseUser | AnonymousUser | None,
    via: str,
    suppress_future_events: bool = True,
    now: datetime | None = None,
) -> ErasureReport:
    """Delete the customer and every row about them, in one transaction, deepest relations first.

    With `suppress_future_events`, the customer's user id and anonymous ids are tombstoned so a product that
    keeps sending calls under them does not recreate the profile. The erasure itself is recorded without
    personal data (the former row id, counts per model, who and when).
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = Customer.objects.select_for_update().filter(pk=customer.pk).first()
        if locked is None:  # a second, simultaneous request waited on the lock for the first to erase the row
            raise AlreadyErased(f"Customer {customer.pk} was already erased.")
        ids: list[tuple[str, str]] = []
        if locked.user_id:
            ids.append((ErasedIdentity.Kind.USER_ID, locked.user_id))
        anonymous = AnonymousId.objects.filter(customer=locked).values_list("anonymous_id", flat=True)
        ids += [(ErasedIdentity.Kind.ANONYMOUS_ID, value) for value in anonymous]

        deleted: dict[str, int] = {}

        def count(result: tuple[int, dict[str, int]]) -> None:
            for label, number in result[1].items():
                if number:
                    deleted[label] = deleted.get(label, 0) + number

        count(_stripe_events(locked).delete())
        # Other profiles' merge history names this one's ids (the linking id, refused user ids in the detail).
        count(ProfileMerge.objects.filter(other_customer_id=locked.pk).delete())
        for relation in sorted(customer_relations(), key=lambda relation: -relation.depth):
            count(relation.model._default_manager.filter(**{relation.path: locked.pk}).delete())
        count(Customer.objects.filter(pk=locked.pk).delete())

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
        )
    return ErasureReport(deleted_rows=deleted, erasure=erasure)
