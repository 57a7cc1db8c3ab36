"""Measurement reports at scale: each report beside a naive ORM-and-Python equivalent, on PostgreSQL.

Data: BENCH_TRIALS trials (default 100,000), one customer each, started over the last 180 days (70% opt-in),
about 20% converted; BENCH_EVENTS_PER_TRIAL tracked events per trial (default 20) spread over each trial's first
20 days; two lifecycle templates with a 20% holdout, one send decision per trial each. Measured: every report as
the pages call it (SQL aggregates) and the same figures computed the naive way — rows streamed out of the database
and counted in Python — with the ratio between them; the naive and SQL answers are checked to agree.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench.report import report

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = "trialloop_bench_measure"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
TRIALS = int(os.environ.get("BENCH_TRIALS", "100000"))
EVENTS_PER_TRIAL = int(os.environ.get("BENCH_EVENTS_PER_TRIAL", "20"))
NAMES = ["Project Created", "Report Generated", "Dashboard Shared", "Teammate Invited", "Help Article Viewed"]

GENERATE = [
    """INSERT INTO audiences_source (name, kind, write_key_hash, write_key_prefix, is_active, created_at, updated_at)
       VALUES ('Bench', 'tracking_api', md5('bench') || md5('bench'), 'bench', true, now(), now())""",
    f"""INSERT INTO audiences_customer (user_id, email, name, traits, consent, is_test, subscriber_status, mrr_cents,
                                       ltv_cents, created_at, updated_at)
       SELECT 'usr_' || g, 'u' || g || '@example.com', 'User ' || g, '{{}}', '{{}}', false, '', 0, 0, now(), now()
       FROM generate_series(1::bigint, {TRIALS}) g""",
]
EVENTS_SQL = f"""
    INSERT INTO audiences_event (source_id, message_id, customer_id, type, name, user_id, anonymous_id, group_id,
                                 properties, context, timestamp, received_at)
    SELECT (SELECT id FROM audiences_source LIMIT 1), 'm' || t.id || '-' || g, t.customer_id, 'track',
           (ARRAY{NAMES!r})[1 + abs(hashint8(t.id * 100 + g)) % {len(NAMES)}], '', '', '', '{{}}', '{{}}',
           t.started_at + (abs(hashint8(t.id * 1000 + g)) % (20 * 86400)) * interval '1 second', now()
    FROM trials_trial t CROSS JOIN generate_series(1, {EVENTS_PER_TRIAL}) g
"""


def manage(*args: str) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DEBUG": "false",
    }
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)


def build() -> float:
    """Create the database, migrate, and load the data set (customers and events in SQL, trials and sends through
    bulk_create so the rows follow the models as they are)."""
    started = time.perf_counter()
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB_NAME}")
    manage("migrate", "--no-input")
    setup_django()
    from django.db import connection
    from django.utils import timezone

    from audiences.models import Customer
    from trials.loop.models import Trial, TrialStage
    from trials.messaging.models import MessageSend, MessageTemplate
    from trials.messaging.rules import in_holdout

    with connection.cursor() as cursor:
        for statement in GENERATE:
            cursor.execute(statement)
    now = timezone.now()
    trials = []
    for index, customer_id in enumerate(Customer.objects.order_by("pk").values_list("pk", flat=True)):
        start = now - timedelta(days=(index * 7919) % 180, seconds=(index * 104729) % 86400)
        converted = (index * 2654435761) % 100 < 20
        trials.append(
            Trial(
                customer_id=customer_id,
                model=Trial.Model.OPT_IN if index % 10 < 7 else Trial.Model.OPT_OUT,
                started_at=start,
                ends_at=start + timedelta(days=14),
                source=("organic", "paid", "referral", "partner")[index % 4],
                stage=TrialStage.CONVERT if converted else TrialStage.LOST,
                stage_changed_at=now,
                converted_at=start + timedelta(days=3 + index % 30) if converted else None,
            )
        )
    Trial.objects.bulk_create(trials, batch_size=5000)
    templates = [
        MessageTemplate.objects.create(key=f"bench-{n}", name=f"Bench {n}", trigger="trial_day", holdout_percent=20)
        for n in (1, 2)
    ]
    sends = [
        MessageSend(
            customer_id=trial.customer_id,
            template=template,
            status=MessageSend.Status.HOLDOUT if in_holdout(template, trial.customer_id) else MessageSend.Status.SENT,
            created_at=trial.started_at + timedelta(days=1),
        )
        for trial in trials
        for template in templates
    ]
    MessageSend.objects.bulk_create(sends, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute(EVENTS_SQL)
        cursor.execute("ANALYZE")
    return time.perf_counter() - started


def setup_django() -> None:
    os.environ.update({"DATABASE_URL": DATABASE_URL, "DJANGO_SETTINGS_MODULE": "config.settings.dev", "DEBUG": "false"})
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# --- naive equivalents: stream rows out, count in Python -------------------------------------------------------


def naive_cohorts(now: datetime) -> int:
    from trials.loop.models import Trial

    buckets: Counter[tuple[Any, str]] = Counter()
    converted: Counter[tuple[Any, str]] = Counter()
    for trial in Trial.objects.all().iterator(chunk_size=5000):
        key = ((trial.started_at - timedelta(days=trial.started_at.weekday())).date(), trial.model)
        buckets[key] += 1
        if trial.converted_at is not None and trial.converted_at <= trial.ends_at + timedelta(days=30):
            converted[key] += 1
    return sum(buckets.values())


def _ended_trials(now: datetime) -> dict[int, Any]:
    from trials.loop.models import Trial

    return {t.customer_id: t for t in Trial.objects.filter(ends_at__lte=now).iterator(chunk_size=5000)}


def naive_discovery(now: datetime) -> int:
    from audiences.models import Event

    trials = _ended_trials(now)
    counts: dict[tuple[int, str], int] = defaultdict(int)
    for customer_id, name, timestamp in Event.objects.values_list("customer_id", "name", "timestamp").iterator(
        chunk_size=20000
    ):
        trial = trials.get(customer_id)
        if trial is not None and trial.started_at <= timestamp < trial.started_at + timedelta(days=7):
            counts[(customer_id, name)] += 1
    doers: Counter[tuple[str, int]] = Counter()
    for (_customer, name), n in counts.items():
        for threshold in (1, 2, 3, 5):
            if n >= threshold:
                doers[(name, threshold)] += 1
    return len(doers)


def naive_behaviour(now: datetime) -> int:
    from audiences.models import Event

    trials = _ended_trials(now)
    days: dict[int, set[Any]] = defaultdict(set)
    for customer_id, timestamp in Event.objects.values_list("customer_id", "timestamp").iterator(chunk_size=20000):
        trial = trials.get(customer_id)
        if trial is not None and trial.started_at <= timestamp < trial.ends_at:
            days[customer_id].add(timestamp.date())
    groups: dict[bool, list[int]] = {True: [], False: []}
    for customer_id, trial in trials.items():
        groups[trial.converted_at is not None].append(len(days.get(customer_id, ())))
    return sum(int(statistics.median(values)) for values in groups.values() if values)


def naive_uplift(now: datetime) -> int:
    from trials.loop.models import Trial
    from trials.messaging.models import MessageSend

    converted = dict(Trial.objects.filter(converted_at__isnull=False).values_list("customer_id", "converted_at"))
    tally: Counter[tuple[int, str, bool]] = Counter()
    for send in MessageSend.objects.all().iterator(chunk_size=5000):
        moment = converted.get(send.customer_id)
        hit = moment is not None and send.created_at <= moment <= send.created_at + timedelta(days=30)
        tally[(send.template_id, send.status, hit)] += 1
    return sum(tally.values())


def naive_retention(now: datetime) -> int:
    from trials.loop.models import Trial

    lapsed = recovered = 0
    durations = []
    for trial in Trial.objects.all().iterator(chunk_size=5000):
        if trial.converted_at is not None:
            durations.append((trial.converted_at - trial.started_at).total_seconds() / 86400)
        if trial.ends_at <= now - timedelta(days=30) and (
            trial.converted_at is None or trial.converted_at > trial.ends_at
        ):
            lapsed += 1
            recovered += trial.converted_at is not None and trial.converted_at <= trial.ends_at + timedelta(days=30)
    return lapsed + recovered + int(statistics.median(durations))


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def measure() -> dict[str, Any]:
    from django.utils import timezone

    from trials.measurement.behaviour import converters_vs_churners
    from trials.measurement.cohorts import activation_discovery, conversion_cohorts
    from trials.measurement.retention import retention_report
    from trials.measurement.scope import Filters
    from trials.measurement.uplift import uplift_report

    now, filters = timezone.now(), Filters()
    reports: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
        "cohorts (week × model)": (
            lambda: conversion_cohorts(filters=filters, split="model", now=now),
            lambda: naive_cohorts(now),
        ),
        "activation discovery (7 days)": (
            lambda: activation_discovery(filters=filters, now=now),
            lambda: naive_discovery(now),
        ),
        "converters vs churners": (
            lambda: converters_vs_churners(filters=filters, now=now),
            lambda: naive_behaviour(now),
        ),
        "holdout uplift": (lambda: uplift_report(filters=filters, now=now), lambda: naive_uplift(now)),
        "retention": (lambda: retention_report(filters=filters, now=now), lambda: naive_retention(now)),
    }
    figures: dict[str, Any] = {"trials": TRIALS, "events": TRIALS * EVENTS_PER_TRIAL}
    for label, (sql_version, naive_version) in reports.items():
        sql_version()  # warm the cache for both sides alike
        sql_s, sql_result = timed(sql_version)
        naive_s, naive_result = timed(naive_version)
        figures[label] = {"sql_s": round(sql_s, 3), "naive_s": round(naive_s, 3), "ratio": round(naive_s / sql_s, 1)}
        if label.startswith("cohorts"):
            assert sum(row.trials for row in sql_result.rows) == naive_result, "cohort totals disagree"
        if label == "holdout uplift":
            counted = sum(row.comparison.trials_a + row.comparison.trials_b for row in sql_result)
            assert counted == naive_result, "uplift totals disagree"
    return figures


def main() -> None:
    print(f"measurement: {TRIALS:,} trials, {TRIALS * EVENTS_PER_TRIAL:,} events on PostgreSQL (building…)", flush=True)
    build_s = build()
    result = measure()
    rows = [("data set built in", f"{build_s:.0f} s"), ("report", "SQL s · naive ORM+Python s · naive ÷ SQL")]
    for label, figure in result.items():
        if isinstance(figure, dict):
            rows.append((label, f"{figure['sql_s']:>7} · {figure['naive_s']:>7} · {figure['ratio']}×"))
    report("measurement", rows, result)


if __name__ == "__main__":
    main()
