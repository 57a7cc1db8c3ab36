"""How erasure reaches rows no foreign key ties to the customer but that can still name them: logs of calls and
deliveries, audit snapshots, job details, briefs of teammates, configuration that quotes an email.

Every model with text or JSON columns is searched for the person's traces unless it is listed in NOT_SEARCHED
with the reason; a matching row's mentions are redacted, or the row is deleted where an app registered that rule
(`ErasureRule`, from the app's `ready()`, so this lower layer imports nothing above it). The search is one SQL
query per model with a substring prefilter; only the rows it returns are checked and redacted in Python. Files
(import uploads) are swept by functions apps register too (`register_file_sweeper`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from django.apps import apps
from django.db import models
from django.db.models import Q
from django.db.models.functions import Cast

from audiences.models import ProfileMerge
from audiences.privacy.relations import customer_relations
from audiences.privacy.traces import ERASED, PersonTraces, clean_terms
from config.fields import EncryptedTextField

# Models erasure does not search, and why. Everything else with a text or JSON column is searched.
_FRAMEWORK = "the application's own bookkeeping, which never holds a customer's data (and must not be altered)"
NOT_SEARCHED: dict[str, str] = {
    "audiences.Customer": "other profiles are other people (even when they share an email)",
    "audiences.CustomerErasure": "the record of erasures: counts per model, written without personal data",
    "audiences.ErasedIdentity": "keyed digests of erased ids, kept so their calls stay suppressed",
    "auth.User": "staff accounts, not customers: a colleague with the same email keeps theirs",
    "auth.Group": "staff roles",
    "auth.Permission": _FRAMEWORK,
    "contenttypes.ContentType": _FRAMEWORK,
    "sessions.Session": "signed staff sessions",
    "django_celery_beat.SolarSchedule": _FRAMEWORK,
    "django_celery_beat.IntervalSchedule": _FRAMEWORK,
    "django_celery_beat.CrontabSchedule": _FRAMEWORK,
    "django_celery_beat.ClockedSchedule": _FRAMEWORK,
    "django_celery_beat.PeriodicTask": "periodic jobs, declared in code (config.schedules)",
    "project.TaskLock": _FRAMEWORK,
    "project.SignInFailure": "keyed digests of what staff typed at sign-in",
    "integrations.StripeSyncCursor": "a backfill's resume position (one Stripe id per collection, no personal "
    "data); redacting it would break the resume",
}
# Ids that could be a number or a word elsewhere ("42", "u7", "enterprise") are matched only as the value of an


class Action(enum.StrEnum):
    DELETE = "delete"
    REDACT = "redact"


@dataclass(frozen=True)
class ErasureRule:
    """How erasure treats rows of one model beyond those a foreign-key path ties to the customer.

    `owned` returns rows that are the person's although no foreign key says so (Stripe events by Stripe
    customer id): they are deleted. `searched` returns the rows to search for mentions of the person (default:
    every row of a model no path ties to a customer, and the rows whose path is empty of one that has); the
    matching rows are redacted, or deleted with `action=DELETE` (a log entry of the person's call is theirs
    as a whole). `search_tags` adds tagged traces to the search terms of this model only. `redact` replaces
    the default redaction of a matching row (every mention replaced by ERASED) where a model knows better.
    """

    label: str
    action: Action = Action.REDACT
    owned: Callable[[PersonTraces], models.QuerySet[Any]] | None = None
    searched: Callable[[PersonTraces], models.QuerySet[Any]] | None = None
    search_tags: tuple[str, ...] = ()
    redact: Callable[[models.Model, PersonTraces], dict[str, Any]] | None = None

    @property
    def model(self) -> type[models.Model]:
        return apps.get_model(self.label)


_rules: dict[str, ErasureRule] = {}


def register_erasure_rule(rule: ErasureRule) -> None:
    """Let an app say how rows of one of its models are found and erased; called from its `ready()`."""
    _rules[rule.label] = rule


@dataclass(frozen=True)
class FileRewrite:
    """A file with the person's rows redacted, written next to the original and swapped in on commit."""

    label: str
    path: Path
    prepared: Path


_file_sweepers: list[Callable[[PersonTraces], list[FileRewrite]]] = []


def register_file_sweeper(sweeper: Callable[[PersonTraces], list[FileRewrite]]) -> None:
    """Let an app redact the person from files it keeps (import uploads); called from its `ready()`."""
    if sweeper not in _file_sweepers:
        _file_sweepers.append(sweeper)


def registered_rules() -> list[ErasureRule]:
    """The rules apps registered (in registration order), without the default searches."""
    return list(_rules.values())


def file_sweepers() -> list[Callable[[PersonTraces], list[FileRewrite]]]:
    """The file sweepers apps registered, in registration order."""
    return list(_file_sweepers)


def _own_rows_of(model: type[models.Model], path: str, traces: PersonTraces) -> models.QuerySet[Any]:
    return model._default_manager.filter(**{f"{path}__isnull": True})


def _all_rows_of(model: type[models.Model], traces: PersonTraces) -> models.QuerySet[Any]:
    return model._default_manager.all()


def erasure_rules() -> list[ErasureRule]:
    """What erasure does beyond the foreign-key walk, for every model: the registered rules, and the default
    search of every other model with text or JSON columns (its rows no path ties to a customer)."""
    relations = {relation.label: relation for relation in customer_relations()}
    rules: list[ErasureRule] = []
    for model in apps.get_models():
        label = model._meta.label
        if model._meta.proxy or label in NOT_SEARCHED:
            continue
        if label in _rules:
            rules.append(_rules[label])
        elif text_columns(model):
            relation = relations.get(label)
            if relation is None:
                rules.append(ErasureRule(label, searched=partial(_all_rows_of, model)))
            elif relation.nullable:
                rules.append(ErasureRule(label, searched=partial(_own_rows_of, model, relation.path)))
    return rules


def text_columns(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    """The columns of a model that can hold someone's name, email or ids: text and JSON (secrets aside)."""
    return [
        column
        for column in model._meta.concrete_fields
        if isinstance(column, models.CharField | models.TextField | models.JSONField)
        and not isinstance(column, EncryptedTextField)
        and not column.primary_key
    ]


def rows_mentioning(
    queryset: models.QuerySet[Any], traces: PersonTraces, extra_terms: Iterable[str] = ()
) -> models.QuerySet[Any]:
    """The rows of the queryset whose text or JSON columns contain one of the person's traces (one query; a
    superset: `PersonTraces.redact_*` tells which really name them)."""
    patterns = traces.sql_patterns(extra_terms)
    columns = text_columns(queryset.model)
    if not patterns or not columns:
        return queryset.none()
    aliases: dict[str, Any] = {}
    condition = Q()
    for column in columns:
        name = column.name
        if isinstance(column, models.JSONField):
            name = f"erasure_{column.name}_text"
            aliases[name] = Cast(column.name, models.TextField())
        for pattern in patterns:
            condition |= Q(**{f"{name}__icontains": pattern})
    found: models.QuerySet[Any] = queryset.alias(**aliases).filter(condition)
    return found


def _unique_columns(model: type[models.Model]) -> set[str]:
    unique = {column.name for column in model._meta.concrete_fields if column.unique}
    for constraint in model._meta.constraints:
        if isinstance(constraint, models.UniqueConstraint):
            unique |= set(constraint.fields)
    return unique


def redacted_row(row: models.Model, traces: PersonTraces) -> dict[str, Any]:
    """The columns of one row that name the person, with their redacted values (empty: it does not)."""
    unique = _unique_columns(type(row))
    changes: dict[str, Any] = {}
    for column in text_columns(type(row)):
        value = getattr(row, column.attname)
        if value is None:
            continue
        if isinstance(column, models.JSONField):
            redacted = traces.redact_json(value)
        else:
            redacted = traces.redact_text(str(value))
            if column.name in unique and redacted != value:
                redacted = f"{ERASED[:-1]}-{row.pk}]"  # still unique
            if column.max_length and len(redacted) > column.max_length:
                redacted = redacted[: column.max_length]
        if redacted != value:
            changes[column.attname] = redacted
    return changes


def rule_matches(rule: ErasureRule, traces: PersonTraces) -> Iterator[tuple[models.Model, dict[str, Any]]]:
    """The rows the rule searches that name the person, each with its redaction."""
    if rule.searched is None:
        return
    extra = [term for tag in rule.search_tags for term in traces.tag(tag)]
    candidates = rows_mentioning(rule.searched(traces), traces, extra)
    if extra:
        traces = PersonTraces(
            customer_pk=traces.customer_pk,
            account_id=traces.account_id,
            ids=traces.ids | clean_terms(extra),
            names=traces.names,
            tagged=traces.tagged,
        )
    redact = rule.redact or redacted_row
    for row in candidates.iterator(chunk_size=500):
        changes = redact(row, traces)
        if changes:
            yield row, changes


def _merges_naming(traces: PersonTraces) -> models.QuerySet[Any]:
    """Other profiles' merge history that names this one (the linking id, refused user ids in the detail)."""
    return ProfileMerge.objects.filter(other_customer_id=traces.customer_pk)


register_erasure_rule(ErasureRule("audiences.ProfileMerge", owned=_merges_naming))
