"""The audit log: every change to a model that configures Trialloop's behaviour is recorded with who made it,
when, through which door (UI, API, admin, or the system: commands and jobs), and each field's old and new value.

It hangs off model signals rather than off each view and service, so a change is recorded however it was made —
a form, a serializer, the admin, a management command — and a new door cannot forget it. Bookkeeping fields that
jobs update on their own (member counts, backfill progress, last run times) are left out, so the log shows what
people decided, not what the machines did. Secrets are never written: a secret field shows only that it changed.
Changes made with `QuerySet.update()` bypass signals; configuration code saves instances (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from config.models import AuditEntry

HIDDEN = "(secret)"
_TIMESTAMPS = frozenset({"created_at", "updated_at"})


@dataclass(frozen=True)
class Audited:
    """A configuration model, the fields whose changes are not decisions, and the fields holding secrets.

    `identity` names the field an entry identifies the object by: the primary key, except where the primary
    key is itself the secret (an API token is its own key), when the entry names its owner instead.
    """

    label: str
    ignored: frozenset[str] = field(default_factory=frozenset)
    secrets: frozenset[str] = field(default_factory=frozenset)
    identity: str = "pk"


AUDITED: list[Audited] = [
    Audited(
        "segments.Segment",
        ignored=frozenset(
            {
                "member_count",
                "last_evaluated_at",
                "last_evaluation_ms",
                "draft_updated_at",
                "evaluation_failing_since",
                "evaluation_error",
            }
        ),
    ),
    Audited("segments.CustomProperty"),
    Audited("segments.SegmentTag"),
    Audited(
        "audiences.ComputedTrait",
        ignored=frozenset(
            {
                "backfill_status",
                "backfill_total",
                "backfill_done",
                "backfill_started_at",
                "backfill_finished_at",
                "backfill_error",
            }
        ),
    ),
    Audited(
        "audiences.Source",
        secrets=frozenset(
            {"write_key_hash", "secret_key", "secret_key_digest", "previous_secret_key", "previous_secret_key_digest"}
        ),
    ),
    Audited("integrations.TrackingPlan"),
    Audited("integrations.TrackingPlanEvent"),
    Audited("integrations.SourceTrackingPlan"),
    Audited("integrations.Destination", secrets=frozenset({"signing_secret", "previous_signing_secret", "write_key"})),
    Audited("offers.Offer"),
    Audited("offers.OfferTag"),
    Audited("offers.CancellationReason"),
    Audited("offers.CancellationFlow"),
    Audited("offers.OfferRule"),
    Audited("offers.FlowRule"),
    Audited("offers.OfferRuleOffer"),
    Audited("trials.ActivationDefinition"),
    Audited("trials.FitRule"),
    Audited("trials.ScoreSettings"),
    Audited("trials.EmailSettings"),
    Audited("trials.MessageTemplate"),
    Audited("trials.Play"),
    Audited("trials.BusinessHours"),
    Audited("trials.Holiday"),
    Audited("integrations.BillingSettings"),
    Audited("integrations.CurrencyRate"),
    Audited("auth.User", ignored=frozenset({"last_login", "user_permissions"}), secrets=frozenset({"password"})),
    Audited("authtoken.Token", secrets=frozenset({"key"}), identity="user_id"),
    Audited(
        "django_celery_beat.PeriodicTask",
        ignored=frozenset({"last_run_at", "total_run_count", "date_changed"}),
    ),
]

# Recorded by the services that act on them, not by signals: unlocking a sign-in removes django-axes' attempt
# rows, which axes itself also deletes on every successful sign-in and expiry (not decisions).
RECORDED_BY_SERVICES = ["axes.AccessAttempt"]

_current_request: ContextVar[HttpRequest | None] = ContextVar("audit_request", default=None)


class AuditRequestMiddleware:
    """Makes the request being served known to the audit handlers (who, and through which door)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            _current_request.reset(token)


def _actor() -> tuple[Any, str, str]:
    """(user or None, their username, the door) for the change being recorded now.

    DRF authenticates inside the view and then sets the user on the Django request too, so token-authenticated
    API changes are attributed as well.
    """
    request = _current_request.get()
    if request is None:
        return None, "", "system"
    via = "api" if request.path.startswith("/api/") else "admin" if request.path.startswith("/admin/") else "ui"
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None, "", via
    return user, user.get_username(), via


_ENCODER = DjangoJSONEncoder()


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    return _ENCODER.default(value)


def _snapshot(instance: models.Model, audited: Audited) -> dict[str, Any]:
    skipped = audited.ignored | _TIMESTAMPS
    return {
        f.attname: _plain(f.value_from_object(instance))
        for f in instance._meta.concrete_fields
        if f.attname not in skipped and f.name not in skipped
    }


def audit_record(*, model: str, object_id: str, object_repr: str, action: str, changes: dict[str, list[Any]]) -> None:
    """Write one entry for the change being made now, by whoever is making it (the request's user and door)."""
    user, username, via = _actor()
    AuditEntry.objects.create(
        at=timezone.now(),
        actor=user if isinstance(user, get_user_model()) else None,
        actor_name=username,
        via=via,
        action=action,
        model=model,
        object_id=object_id,
        object_repr=object_repr,
        changes=changes,
    )


def _record(instance: models.Model, action: str, changes: dict[str, list[Any]], audited: Audited) -> None:
    identity = str(getattr(instance, audited.identity))
    if audited.identity == "pk":
        described = str(instance)[:200]
    else:  # str() of such an object may show the secret (a token prints its key)
        described = (
            f"{str(instance._meta.verbose_name).capitalize()} of {audited.identity.removesuffix('_id')} {identity}"
        )
    audit_record(model=instance._meta.label, object_id=identity, object_repr=described, action=action, changes=changes)


def _hide(audited: Audited, name: str, old: Any, new: Any) -> list[Any]:
    if name in audited.secrets or name.removesuffix("_id") in audited.secrets:
        return [HIDDEN if old not in (None, "") else None, HIDDEN if new not in (None, "") else None]
    return [old, new]


def _connect(model: type[models.Model], audited: Audited) -> None:
    unrecorded = audited.ignored | _TIMESTAMPS

    def bookkeeping_only(update_fields: Any) -> bool:
        """A save of bookkeeping fields alone (a job's `update_fields`): nothing to record, no query spent."""
        return update_fields is not None and set(update_fields) <= unrecorded

    def before_save(sender: type[models.Model], instance: models.Model, raw: bool = False, **kwargs: Any) -> None:
        if raw or instance._state.adding or instance.pk is None or bookkeeping_only(kwargs.get("update_fields")):
            return
        old = sender._base_manager.filter(pk=instance.pk).first()
        instance._audit_before = _snapshot(old, audited) if old is not None else None  # type: ignore[attr-defined]

    def after_save(
        sender: type[models.Model], instance: models.Model, created: bool, raw: bool = False, **kwargs: Any
    ) -> None:
        if raw or bookkeeping_only(kwargs.get("update_fields")):
            return
        now = _snapshot(instance, audited)
        before: dict[str, Any] | None = getattr(instance, "_audit_before", None)
        instance._audit_before = None  # type: ignore[attr-defined]
        if created or before is None:
            changes = {
                name: _hide(audited, name, None, value) for name, value in now.items() if value not in (None, "")
            }
            _record(instance, AuditEntry.Action.CREATED, changes, audited)
            return
        changes = {
            name: _hide(audited, name, before.get(name), value)
            for name, value in now.items()
            if before.get(name) != value
        }
        if changes:
            _record(instance, AuditEntry.Action.CHANGED, changes, audited)

    def after_delete(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
        old = _snapshot(instance, audited)
        changes = {name: _hide(audited, name, value, None) for name, value in old.items() if value not in (None, "")}
        _record(instance, AuditEntry.Action.DELETED, changes, audited)

    uid = f"audit:{audited.label}"
    pre_save.connect(before_save, sender=model, weak=False, dispatch_uid=uid)
    post_save.connect(after_save, sender=model, weak=False, dispatch_uid=uid)
    post_delete.connect(after_delete, sender=model, weak=False, dispatch_uid=uid)


def _connect_many_to_many(
    model: type[models.Model], relation: models.ManyToManyField[Any, Any], audited: Audited
) -> None:
    """Record a many-to-many change (a rule's segments, a user's roles) as the list before and after it."""
    name = "roles" if relation.name == "groups" else relation.name

    def members(instance: models.Model) -> list[str]:
        return sorted(str(related) for related in getattr(instance, relation.name).all())

    def changed(sender: Any, instance: models.Model, action: str, reverse: bool, **kwargs: Any) -> None:
        if reverse or not isinstance(instance, model):  # changed from the other side: not a decision about it
            return
        stash = f"_audit_{relation.name}_before"
        if action in ("pre_add", "pre_remove", "pre_clear"):
            setattr(instance, stash, members(instance))
        elif action in ("post_add", "post_remove", "post_clear"):
            before = getattr(instance, stash, None)
            after = members(instance)
            if before is not None and before != after:
                _record(instance, AuditEntry.Action.CHANGED, {name: [before, after]}, audited)

    through = relation.remote_field.through
    m2m_changed.connect(changed, sender=through, weak=False, dispatch_uid=f"audit:{model._meta.label}.{relation.name}")


def audit_connect() -> None:
    """Connect the handlers for every audited model and its many-to-many fields (once, from config's ready())."""
    for audited in AUDITED:
        model = apps.get_model(audited.label)
        _connect(model, audited)
        for relation in model._meta.many_to_many:
            if isinstance(relation, models.ManyToManyField) and relation.name not in audited.ignored:
                _connect_many_to_many(model, relation, audited)
