"""Segment evaluation at scale: the engine beside the equivalent hand-written SELECT, on PostgreSQL.

Data: BENCH_CUSTOMERS customers (default 1,000,000) with traits, a subscription for most of them, and
BENCH_EVENTS events (default 10,000,000) over 60 days, generated inside PostgreSQL. The segment has six
conditions: subscriber MRR and status, the plan's interval, a subscription status, a custom property (trait)
and a behavioural one (Project Created at least 3 times in the last 30 days). Measured: the engine's first
evaluation (compile, select, write every member and its history row), a re-evaluation with nothing changed
(which must write nothing), and the hand-written SELECT of the same members as the baseline.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from bench.report import report

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = "trialloop_bench_segments"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "1000000"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "10000000"))

SEGMENT = {
    "type": "group",
    "operator": "and",
    "children": [
        {"type": "condition", "property": "subscriber.mrr", "operator": "gte", "value": 50},
        {"type": "condition", "property": "subscriber.status", "operator": "equals", "value": "active"},
        {"type": "condition", "property": "plan.interval", "operator": "equals", "value": "month"},
        {"type": "condition", "property": "subscription.status", "operator": "one_of", "value": ["active", "past_due"]},
        {"type": "condition", "property": "trait.tier", "operator": "equals", "value": "gold"},
        {"type": "event", "event": "Project Created", "operator": "at_least", "count": 3, "within_days": 30},
    ],
}

BASELINE = """
SELECT c.id FROM audiences_customer c
WHERE c.mrr_cents >= 5000 AND c.subscriber_status = 'active' AND c.traits -> 'tier' = '"gold"'::jsonb
  AND EXISTS (SELECT 1 FROM trials_subscription s JOIN trials_plan p ON p.id = s.plan_id
              WHERE s.customer_id = c.id AND p.interval = 'month')
  AND EXISTS (SELECT 1 FROM trials_subscription s WHERE s.customer_id = c.id AND s.status IN ('active', 'past_due'))
  AND (SELECT count(*) FROM audiences_event e WHERE e.customer_id = c.id AND e.name = 'Project Created'
       AND e.timestamp >= now() - interval '30 days' AND e.timestamp <= now()) >= 3
"""

GENERATE = [
    """INSERT INTO audiences_source (name, kind, write_key_hash, write_key_prefix, is_active, created_at, updated_at)
       VALUES ('Bench', 'tracking_api', md5('bench') || md5('bench'), 'bench', true, now(), now())""",
    """INSERT INTO trials_product (name, description, active, metadata, created_at, updated_at)
       VALUES ('Team', '', true, '{}', now(), now())""",
    """INSERT INTO trials_plan (name, amount_cents, currency, interval, interval_count, usage_type, active, product_id,
                               created_at, updated_at)
       SELECT name, amount, 'usd', interval, 1, 'licensed', true, (SELECT id FROM trials_product LIMIT 1), now(), now()
       FROM (VALUES ('Team monthly', 4900, 'month'), ('Team yearly', 49000, 'year')) v(name, amount, interval)""",
    f"""INSERT INTO audiences_customer (user_id, email, name, traits, consent, is_test, subscriber_status, mrr_cents,
                                       ltv_cents, first_seen_at, last_seen_at, created_at, updated_at)
       SELECT 'usr_' || g, 'u' || g || '@example.com', 'User ' || g,
              jsonb_build_object('tier', (ARRAY['gold', 'silver', 'bronze'])[1 + g % 3], 'seats', g % 50),
              '{{}}', false, (ARRAY['active', 'active', 'canceled', ''])[1 + g % 4], (g * 7919) % 40000, 0,
              now() - (g % 90) * interval '1 day', now(), now(), now()
       FROM generate_series(1::bigint, {CUSTOMERS}) g""",
    """INSERT INTO trials_subscription (customer_id, plan_id, status, quantity, started_at, cancel_at_period_end,
                                       coupon_id, discount_duration, mrr_cents, paid_cents, metadata,
                                       cancellation_details, created_at, updated_at)
       SELECT c.id, (SELECT min(id) + (c.id % 2) FROM trials_plan),
              (ARRAY['active', 'trialing', 'past_due', 'canceled', 'active'])[1 + c.id % 5], 1, now(), false,
              '', '', 4900, 0, '{}', '{}', now(), now()
       FROM audiences_customer c WHERE c.id % 5 <> 0""",
    f"""INSERT INTO audiences_event (source_id, message_id, customer_id, type, name, user_id, anonymous_id, group_id,
                                    properties, context, timestamp, received_at)
       SELECT (SELECT id FROM audiences_source LIMIT 1), 'm' || g, 1 + abs(hashint8(g)) % {CUSTOMERS}, 'track',
              (ARRAY['Project Created', 'Report Generated', 'Dashboard Viewed', 'Teammate Invited'])
                  [1 + abs(hashint8(g + 1)) % 4],
              '', '', '', '{{}}', '{{}}', now() - (abs(hashint8(g + 2)) % (60 * 86400)) * interval '1 second', now()
       FROM generate_series(1::bigint, {EVENTS}) g""",
    "ANALYZE",
]


def manage(*args: str) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DEBUG": "false",
    }
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)


def build() -> float:
    started = time.perf_counter()
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB_NAME}")
    manage("migrate", "--no-input")
    with psycopg.connect(DATABASE_URL.replace("postgres://", "postgresql://", 1), autocommit=True) as db:
        indexes = [row[0] for row in db.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'audiences_event' AND indexname NOT LIKE '%pkey'"
            " AND indexdef NOT LIKE '%UNIQUE%'"
        )]  # fmt: skip
        names = [row[0] for row in db.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'audiences_event' AND indexname NOT LIKE '%pkey'"
            " AND indexdef NOT LIKE '%UNIQUE%'"
        )]  # fmt: skip
        for name in names:
            db.execute(f"DROP INDEX {name}")  # bulk load first, index after, as any large load would
        for statement in GENERATE:
            db.execute(statement)
        for definition in indexes:
            db.execute(definition)
        db.execute("ANALYZE")
    return time.perf_counter() - started


def measure() -> dict[str, float | int]:
    os.environ.update({"DATABASE_URL": DATABASE_URL, "DJANGO_SETTINGS_MODULE": "config.settings.dev", "DEBUG": "false"})
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection

    from segments.evaluation import segment_evaluate
    from segments.models import CustomProperty, SegmentMembershipChange
    from segments.services import segment_save

    CustomProperty.objects.get_or_create(key="tier", defaults={"value_type": "string"})
    segment = segment_save(name="Engaged gold monthly payers", conditions=SEGMENT)

    with connection.cursor() as cursor:
        cursor.execute(BASELINE)  # warm the cache for both sides alike
        cursor.fetchall()
        started = time.perf_counter()
        cursor.execute(BASELINE)
        baseline_members = len(cursor.fetchall())
        baseline_s = time.perf_counter() - started

    started = time.perf_counter()
    first = segment_evaluate(segment=segment)
    engine_s = time.perf_counter() - started

    history_before = SegmentMembershipChange.objects.count()
    started = time.perf_counter()
    again = segment_evaluate(segment=segment)
    noop_s = time.perf_counter() - started
    noop_rows = (SegmentMembershipChange.objects.count() - history_before) + again.entered + again.exited
    return {
        "customers": CUSTOMERS,
        "events": EVENTS,
        "members": first.members,
        "baseline_members": baseline_members,
        "engine_s": round(engine_s, 3),
        "baseline_s": round(baseline_s, 3),
        "ratio": round(engine_s / baseline_s, 2),
        "noop_s": round(noop_s, 3),
        "noop_rows_written": noop_rows,
    }


def main() -> None:
    print(f"segments: {CUSTOMERS:,} customers, {EVENTS:,} events on PostgreSQL (building the data set…)", flush=True)
    build_s = build()
    result = measure()
    rows = [
        ("data set built in", f"{build_s:.0f} s"),
        ("members (engine / hand-written SELECT)", f"{result['members']:,} / {result['baseline_members']:,}"),
        ("engine: first evaluation incl. writes", f"{result['engine_s']} s"),
        ("baseline: hand-written SELECT", f"{result['baseline_s']} s"),
        ("ratio engine / baseline", f"{result['ratio']}×  (target ≤ 2×)"),
        (
            "re-evaluation with no change",
            f"{result['noop_s']} s, {result['noop_rows_written']} rows written (target 0)",
        ),
    ]
    report("segments", rows, result)


if __name__ == "__main__":
    main()
