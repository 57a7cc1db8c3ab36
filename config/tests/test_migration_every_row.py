"""Every row survives the migrations: a database at an earlier schema, with rows in every table of every project
app, migrated forward to today's schema, still holds each of those rows.

The baseline is the schema of 2026-11-24 (the last release before the edge-hardening and exactly-once work);
moving models between apps or packages must keep their tables and rows (`db_table` or state-only migrations),
and this test is what proves it. The rows are made generically from the historical models — a value of the
right type for every field, foreign keys pointing at rows made before — so a new model or table is covered
without editing the test. A table that a migration drops on purpose is listed in DROPPED with its reason.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.apps.registry import Apps
from django.core.management.color import no_style
from django.db import IntegrityError, connection, models, transaction

from config.tests.migrating import migrate_to

PROJECT_APPS = ("project", "audiences", "segments", "trials", "offers", "integrations")
BASELINE = [
    ("project", "0004_audit_hide_token_keys"),
    ("audiences", "0007_unqueued_event_batch"),
    ("segments", "0005_account_custom_properties"),
    ("trials", "0011_throttle_window_bound"),
    ("offers", "0003_hosted_page_languages_and_win_back_emails"),
    ("integrations", "0007_encrypt_destination_secrets"),
]
ROWS_PER_TABLE = 2
#: Tables a later migration removes on purpose, with the reason; their rows are not looked for.
DROPPED = {
    "project_signinfailure": "project.0005: the hand-written sign-in lockout gave way to django-axes (issue 18)",
}
MOMENT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _project_models(apps: Apps) -> list[type[models.Model]]:
    """Concrete tables of the project's apps, each after the models its required foreign keys point at."""
    pending = [
        model
        for model in apps.get_models()
        if model._meta.app_label in PROJECT_APPS and model._meta.managed and not model._meta.proxy
    ]
    ordered: list[type[models.Model]] = []
    while pending:
        ready = [
            model
            for model in pending
            if all(
                field.null or target in ordered or target is model or target._meta.app_label not in PROJECT_APPS
                for field, target in _relations(model)
            )
        ]
        assert ready, f"required foreign keys in a circle among {pending}"
        ordered += ready
        pending = [model for model in pending if model not in ready]
    return ordered


def _relations(model: type[models.Model]) -> list[tuple[models.Field[Any, Any], type[models.Model]]]:
    """The model's foreign keys with the model each points at."""
    found = []
    for field in model._meta.concrete_fields:
        if field.is_relation:
            assert isinstance(field.related_model, type)
            found.append((field, field.related_model))
    return found


def _value(field: models.Field[Any, Any], n: int) -> Any:
    """A value of the field's type, distinct per row, that passes the usual checks (not empty, positive)."""
    if field.has_default() and not field.unique and not field.is_relation:  # a default is a valid value
        return field.get_default()
    if field.choices:
        choices = [value for value, _ in field.flatchoices]
        return choices[n % len(choices)]
    if field.is_relation:
        target = dict(_relations(field.model))[field]
        rows = list(target._default_manager.order_by("pk").values_list("pk", flat=True))
        if len(rows) <= n and target._meta.label == "auth.User":  # a one-to-one needs a user per row
            rows.append(target._default_manager.create(username=f"migration-user-{n}").pk)
        if not rows:
            return None
        return target._default_manager.get(pk=rows[n % len(rows)])
    kind = field.get_internal_type()
    text = f"{field.model._meta.model_name}-{field.name}-{n}"
    if kind in ("AutoField", "BigAutoField", "SmallAutoField"):
        return None
    if isinstance(field, models.EmailField):
        return f"person{n}@example.com"
    if isinstance(field, models.URLField):
        return f"https://example.com/{n}"
    if isinstance(field, models.GenericIPAddressField):
        return f"127.0.0.{n + 1}"
    if kind in ("CharField", "TextField", "SlugField"):
        limit = field.max_length or 200
        return text[-limit:] if len(text) > limit else text
    if kind in (
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveSmallIntegerField",
        "PositiveBigIntegerField",
    ):
        return n + 1
    if kind == "DecimalField":
        return Decimal(n + 1)
    if kind == "FloatField":
        return float(n + 1)
    if kind == "BooleanField":
        return bool(n % 2)
    if kind == "DateTimeField":
        return MOMENT + timedelta(days=n)
    if kind == "DateField":
        return date(2026, 11, 1) + timedelta(days=n)
    if kind == "TimeField":  # later fields later in the day: opens before closes
        return time(8 + field.model._meta.concrete_fields.index(field) % 12, n)
    if kind == "DurationField":
        return timedelta(hours=n + 1)
    if kind == "UUIDField":
        return uuid.uuid4()
    if kind == "JSONField":
        return {"n": n}
    if kind == "BinaryField":
        return bytes([n])
    if kind in ("FileField", "ImageField"):
        return f"migration-test/{text}.csv"
    return text


def _fill(apps: Apps) -> dict[str, set[Any]]:
    """ROWS_PER_TABLE rows in every project table; returns each table's primary keys."""
    project_models = _project_models(apps)
    # Migrations that seed a settings row name its id; PostgreSQL's sequences do not know, so start them after it.
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), project_models):
            cursor.execute(statement)
    # Rows the migrations themselves wrote must survive too.
    made = {m._meta.db_table: _stored_keys(m._meta.db_table) for m in project_models}
    failures: list[str] = []
    for model in project_models:
        for n in range(ROWS_PER_TABLE):
            values = {
                field.name: _value(field, n)
                for field in model._meta.concrete_fields
                if not (field.primary_key and field.get_internal_type().endswith("AutoField"))
            }
            try:
                with transaction.atomic():
                    row = model._default_manager.create(**{k: v for k, v in values.items() if v is not None})
            except IntegrityError as refused:
                failures.append(f"{model._meta.label} row {n}: {refused}")
                continue
            made.setdefault(model._meta.db_table, set()).add(row.pk)
    assert not failures, "the generic rows did not fit:\n" + "\n".join(failures)
    return made


def _stored_keys(table: str) -> set[Any]:
    with connection.cursor() as cursor:
        primary = connection.introspection.get_primary_key_column(cursor, table)
        assert primary is not None, f"{table} has no primary key"
        cursor.execute(f"SELECT {connection.ops.quote_name(primary)} FROM {connection.ops.quote_name(table)}")
        return {value for (value,) in cursor.fetchall()}


def _comparable(keys: set[Any]) -> set[str]:
    return {str(key).replace("-", "") for key in keys}


@pytest.mark.django_db(transaction=True)
def test_every_row_of_every_table_survives_the_migrations_since_the_baseline() -> None:
    old = migrate_to(BASELINE)
    made = _fill(old)
    empty = [table for table, keys in made.items() if not keys]
    assert not empty, f"tables the test left empty: {empty}"

    migrate_to()

    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
    lost: list[str] = []
    for table, keys in sorted(made.items()):
        if table in DROPPED:
            assert table not in tables, f"{table} is listed as dropped but still exists"
            continue
        if table not in tables:
            lost.append(f"{table}: the table is gone")
            continue
        missing = _comparable(keys) - _comparable(_stored_keys(table))
        if missing:
            lost.append(f"{table}: {len(missing)} of {len(keys)} rows gone")
    assert not lost, "\n".join(lost)
