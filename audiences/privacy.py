"""GDPR: export everything held about one customer, and erase a customer everywhere.

Both walk the model graph instead of a hand-kept list: every model with a foreign-key path to Customer (directly,
or through a subscription, trial, session, ...) is found at run time, so a model added later is exported and
erased without anyone remembering to add it here — and the completeness test walks the same graph.

Erasure also reaches rows that no foreign key ties to the customer but that can still name them: logs of calls
and deliveries, audit snapshots, job details, briefs of teammates, configuration that quotes an email. Every
model with text or JSON columns is searched for the person's traces (`PersonTraces`: emails, user and anonymous
ids, phone numbers, Stripe customer ids) unless it is listed in NOT_SEARCHED with the reason; a matching row's
mentions are redacted, or the row is deleted where an app registered that rule (`ErasureRule`, from the app's
`ready()`, so this lower layer imports nothing above it). The search is one SQL query per model with a
substring prefilter; only the rows it returns are checked and redacted in Python. Files (import uploads) are
swept by functions apps register too, and replaced once the erasure commits.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property, partial
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.models import Q
from django.db.models.functions import Cast
from django.utils import timezone

from audiences.models import Account, AnonymousId, Customer, CustomerErasure, ErasedIdentity, Event, ProfileMerge
from config.fields import EncryptedTextField

# Models a path may not pass through: they are shared by many customers, so reaching a row through them does
# not make the row this customer's (an account's other members, a segment's other members, ...).
_SHARED_MODELS = {"audiences.Account", "audiences.Source", "segments.Segment", "audiences.ComputedTrait"}
_MAX_DEPTH = 3
# Who may do what: exporting is part of answering an access request (CS, Growth, Admin: whoever may edit
# customers); erasing cannot be undone, so it needs the delete permission only the Admin role holds.
EXPORT_PERMISSION = "audiences.change_customer"
ERASE_PERMISSION = "audiences.delete_customer"

ERASED = "[erased]"
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
# id key of a call ({"userId": "42"}); the others (emails, "usr_8f2k", UUIDs, phone numbers) wherever they
# stand as a whole token.
_ID_KEYS = ("userId", "user_id", "anonymousId", "anonymous_id", "previousId", "previous_id")
_MIN_SEARCHED_LENGTH = 6
_DISTINCTIVE = re.compile(r"[\d@._:+-]")
_MIN_NAME_LENGTH = 3
# A term counts where it is not part of a longer word, id or address: "ada@acme.test" is not found in
# "nada@acme.test" nor in "ada@acme.testing".
_BEFORE = r"(?<![\w@.+-])"
_AFTER = r"(?![\w@+-]|\.\w)"


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

    @property
    def nullable(self) -> bool:
        """Whether a row can lose its way to a customer (a delivery kept after its profile was merged away)."""
        model: Any = self.model
        for name in self.path.split("__"):
            relation = model._meta.get_field(name)
            if relation.null:
                return True
            model = relation.related_model
        return False


def _forward_relations(model: type[models.Model]) -> Iterable[models.ForeignKey[Any, Any]]:
    for field_ in model._meta.concrete_fields:
        if isinstance(field_, models.ForeignKey) and field_.remote_field is not None:
            yield field_


def _path_to_customer(model: type[models.Model], depth: int = _MAX_DEPTH) -> str | None:
    """The shortest lookup path (`customer`, `subscription__customer`, ...) from model to Customer, if any."""
    frontier: list[tuple[type[models.Model], str]] = [(model, "")]
    for _ in range(depth):
        next_frontier: list[tuple[type[models.Model], str]] = []
        for current, prefix in frontier:
            for relation in _forward_relations(current):
                target = relation.related_model
                if not isinstance(target, type):
                    continue
                path = f"{prefix}{relation.name}"
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


# --- who the person is, and how to find them where no foreign key leads -----------------------------------


@dataclass
class Traces:
    """What a collector found about a person: ids (searched everywhere), names (redacted where the person is
    found, never searched: a name is not unique), and tagged ids some rules search for as well (for example
    the person's Stripe charge ids, which name them in dispute events only)."""

    ids: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    tagged: dict[str, set[str]] = field(default_factory=dict)

    def add(self, other: Traces) -> None:
        self.ids |= other.ids
        self.names |= other.names
        for tag, values in other.tagged.items():
            self.tagged.setdefault(tag, set()).update(values)


def _clean(values: Iterable[Any]) -> frozenset[str]:
    return frozenset(text for value in values if isinstance(value, str | int) and (text := str(value).strip()))


def _is_short(term: str) -> bool:
    """Whether an id is too common to look for outside an id key: short, all digits, or a plain word."""
    return len(term) < _MIN_SEARCHED_LENGTH or term.isdigit() or not _DISTINCTIVE.search(term)


def _json_escaped(term: str) -> str:
    """The term as it appears inside a JSON string written with ASCII escapes (SQLite's JSON columns)."""
    return json.dumps(term)[1:-1]


@dataclass(frozen=True)
class PersonTraces:
    """The person being erased as other rows may name them, with the matching and redaction built on that."""

    customer_pk: int
    account_id: int | None
    ids: frozenset[str]
    names: frozenset[str]
    tagged: dict[str, frozenset[str]]

    def tag(self, name: str) -> frozenset[str]:
        return self.tagged.get(name, frozenset())

    def sql_patterns(self, extra: Iterable[str] = ()) -> list[str]:
        """Substrings a row mentioning the person contains (a superset: the row is then checked in Python)."""
        patterns: set[str] = set()
        for term in self.ids | _clean(extra):
            if _is_short(term):
                patterns.add(f'"{term}"')
                if term.isdigit():
                    patterns |= {f":{term}", f": {term}"}
            else:
                patterns |= {term, _json_escaped(term)}
        return sorted(patterns)

    @cached_property
    def _long(self) -> re.Pattern[str] | None:
        terms = {term for term in self.ids if not _is_short(term)}
        terms |= {name for name in self.names if len(name) >= _MIN_NAME_LENGTH}
        variants = {variant for term in terms for variant in (term, _json_escaped(term))}
        if not variants:
            return None
        alternatives = "|".join(re.escape(term) for term in sorted(variants, key=len, reverse=True))
        return re.compile(f"{_BEFORE}(?:{alternatives}){_AFTER}", re.IGNORECASE)

    @cached_property
    def _short(self) -> frozenset[str]:
        return frozenset(term for term in self.ids if _is_short(term))

    @cached_property
    def _short_in_text(self) -> re.Pattern[str] | None:
        if not self._short:
            return None
        keys = "|".join(_ID_KEYS)
        values = "|".join(re.escape(term) for term in sorted(self._short))
        return re.compile(f'("(?:{keys})"\\s*:\\s*)(?:"(?:{values})"|(?:{values})(?![\\w.]))')

    def redact_text(self, text: str) -> str:
        """The text with every mention of the person replaced by ERASED."""
        if self._long is not None:
            text = self._long.sub(ERASED, text)
        if self._short_in_text is not None:
            text = self._short_in_text.sub(rf'\1"{ERASED}"', text)
        return text

    def redact_json(self, value: Any, key: str = "") -> Any:
        """A copy of a JSON value with every mention of the person replaced by ERASED (keys included)."""
        if isinstance(value, dict):
            return {self.redact_text(str(name)): self.redact_json(item, str(name)) for name, item in value.items()}
        if isinstance(value, list):
            return [self.redact_json(item, key) for item in value]
        is_id = key in _ID_KEYS and isinstance(value, str | int) and not isinstance(value, bool)
        if is_id and str(value) in self._short:
            return ERASED
        if isinstance(value, str):
            return self.redact_text(value)
        return value


_collectors: list[Callable[[Customer], Traces]] = []


def register_trace_collector(collector: Callable[[Customer], Traces]) -> None:
    """Let an app add what it knows the person by (Stripe ids and emails, ...); called from its `ready()`."""
    if collector not in _collectors:
        _collectors.append(collector)


def person_traces(customer: Customer) -> PersonTraces:
    """Gather from the person's own rows every id, email, phone and name other rows may name them by."""
    traits = customer.traits if isinstance(customer.traits, dict) else {}
    found = Traces(
        ids={customer.user_id or "", customer.email or "", customer.stripe_customer_id or ""},
        names={customer.name or "", " ".join(str(traits.get(key) or "") for key in ("first_name", "last_name"))},
        tagged={"stripe_customer_ids": {customer.stripe_customer_id or ""}},
    )
    found.ids |= {str(traits.get(key) or "") for key in ("email", "phone", "mobile")}
    found.names.add(str(traits.get("name") or ""))
    found.ids |= set(AnonymousId.objects.filter(customer=customer).values_list("anonymous_id", flat=True))
    events = Event.objects.filter(customer=customer)
    found.ids |= set(events.exclude(user_id="").values_list("user_id", flat=True).distinct())
    found.ids |= set(events.exclude(anonymous_id="").values_list("anonymous_id", flat=True).distinct())
    found.ids |= set(ProfileMerge.objects.filter(customer=customer).values_list("linking_id", flat=True))
    for collector in _collectors:
        found.add(collector(customer))
    return PersonTraces(
        customer_pk=customer.pk,
        account_id=customer.account_id,
        ids=_clean(found.ids),
        names=_clean(found.names),
        tagged={tag: _clean(values) for tag, values in found.tagged.items()},
    )


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


def _matches(rule: ErasureRule, traces: PersonTraces) -> Iterator[tuple[models.Model, dict[str, Any]]]:
    """The rows the rule searches that name the person, each with its redaction."""
    if rule.searched is None:
        return
    extra = [term for tag in rule.search_tags for term in traces.tag(tag)]
    candidates = rows_mentioning(rule.searched(traces), traces, extra)
    if extra:
        traces = PersonTraces(
            customer_pk=traces.customer_pk,
            account_id=traces.account_id,
            ids=traces.ids | _clean(extra),
            names=traces.names,
            tagged=traces.tagged,
        )
    redact = rule.redact or redacted_row
    for row in candidates.iterator(chunk_size=500):
        changes = redact(row, traces)
        if changes:
            yield row, changes


# --- export -----------------------------------------------------------------------------------------------


def _rows(queryset: models.QuerySet[Any]) -> list[dict[str, Any]]:
    return list(queryset.order_by("pk").values())


def customer_export(customer: Customer) -> dict[str, Any]:
    """Everything held about the customer as JSON-ready data: the profile, then each related model's rows, then
    the rows registered rules say are theirs although no foreign key leads to them (Stripe events, ...).

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
    traces = person_traces(customer)
    for rule in _rules.values():
        if rule.owned is not None:
            rows = _rows(rule.owned(traces))
            if rows:
                records.setdefault(rule.label, []).extend(rows)
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


# --- erasure ----------------------------------------------------------------------------------------------


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
                matched = list(_matches(rule, traces))
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
            for sweeper in _file_sweepers:
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


def _merges_naming(traces: PersonTraces) -> models.QuerySet[Any]:
    """Other profiles' merge history that names this one (the linking id, refused user ids in the detail)."""
    return ProfileMerge.objects.filter(other_customer_id=traces.customer_pk)


register_erasure_rule(ErasureRule("audiences.ProfileMerge", owned=_merges_naming))
