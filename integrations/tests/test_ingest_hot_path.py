"""The tracking API's hot path: the write-key cache, prepared statements and index-probing plans (issue 3)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from django.db import connection
from django.test import Client, TestCase
from django.test.utils import CaptureQueriesContext

from audiences import selectors
from audiences.models import AnonymousId, Customer, Event
from audiences.selectors import source_for_write_key
from audiences.services import source_create, source_rotate_key
from integrations.tracking.models import TrackingPlan
from integrations.tracking.plans import source_tracking_plan_set

on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner and statements")


def post_batch(key: str, batch: list[dict[str, Any]]) -> dict[str, Any]:
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = Client().post(
            "/v1/batch", data=json.dumps({"batch": batch}), content_type="application/json", HTTP_AUTHORIZATION=auth
        )
    assert response.status_code == 200, response.content
    return orjson.loads(response.content)  # type: ignore[no-any-return]


def calls(users: range, event: str = "Report Generated") -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [
        {"type": "track", "event": event, "userId": f"usr_{n}", "anonymousId": f"anon_{n}", "timestamp": now}
        for n in users
    ]


@pytest.mark.django_db
class TestWriteKeyCache:
    def test_a_known_key_is_looked_up_once(self) -> None:
        source, key = source_create(name="Web")
        assert source_for_write_key(key) == source
        with CaptureQueriesContext(connection) as queries:
            assert source_for_write_key(key) == source
        assert len(queries) == 0

    def test_unknown_keys_are_not_kept(self) -> None:
        source_for_write_key("not-a-key")
        with CaptureQueriesContext(connection) as queries:
            assert source_for_write_key("not-a-key") is None
        assert len(queries) == 1
        assert all(entry[1] is not None for entry in selectors._sources_by_digest.values())

    def test_entries_expire(self, monkeypatch: pytest.MonkeyPatch) -> None:
        _, key = source_create(name="Web")
        source_for_write_key(key)
        monkeypatch.setattr(selectors, "SOURCE_CACHE_SECONDS", 0.0)
        with CaptureQueriesContext(connection) as queries:
            source_for_write_key(key)
        assert len(queries) == 1

    def test_rotation_and_deactivation_take_effect_at_once(self) -> None:
        source, old = source_create(name="Web")
        assert source_for_write_key(old) == source
        new = source_rotate_key(source=source)
        assert source_for_write_key(old) is None
        assert source_for_write_key(new) == source
        source.is_active = False
        source.save()
        assert source_for_write_key(new) is None

    def test_a_tracking_plan_change_reaches_the_next_call(self) -> None:
        source, key = source_create(name="Web")
        post_batch(key, calls(range(1)))
        plan = TrackingPlan.objects.create(name="Core")
        source_tracking_plan_set(source=source, plan=plan, mode="block")
        answer = post_batch(key, calls(range(1, 2), event="Unplanned Thing"))
        assert answer["stored"] == 0 and answer["blocked"] == 1


@on_postgresql
@pytest.mark.django_db
class TestPreparedStatements:
    def _prepared(self) -> list[tuple[str, str, int, int]]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT name, statement, generic_plans, custom_plans FROM pg_prepared_statements")
            return list(cursor.fetchall())

    def test_the_hot_path_is_prepared_once_and_planned_once(self) -> None:
        # The connection outlives tests: count only the statements this test's batches ran (earlier tests may have
        # prepared the same text with other parameter types, say an all-null array).
        before = {name: generic_plans + custom_plans for name, _, generic_plans, custom_plans in self._prepared()}
        # Customer ids crossing 32767 between batches: psycopg would send the first batch's ids as smallint[] and
        # the next one's as integer[] (two statements) unless the hot path fixes the type of every int it sends.
        with connection.cursor() as cursor:
            cursor.execute("SELECT setval(pg_get_serial_sequence('audiences_customer', 'id'), 32667)")
        _, key = source_create(name="Web")
        for start in range(0, 300, 100):
            assert post_batch(key, calls(range(start, start + 100)))["stored"] == 100
        for start in range(0, 300, 100):  # customers known now: the lookup finds them all
            assert post_batch(key, calls(range(start, start + 100), event="Project Created"))["stored"] == 100
        prepared = [row for row in self._prepared() if row[2] + row[3] > before.get(row[0], 0)]
        insert = [row for row in prepared if row[1].startswith("INSERT INTO audiences_event")]
        lookup = [row for row in prepared if row[1].startswith("WITH links AS")]
        assert len(insert) == 1 and len(lookup) == 1  # one statement each, reused by every batch
        for _, _, generic_plans, custom_plans in (*insert, *lookup):
            assert custom_plans == 0
            assert generic_plans >= 1
        assert Event.objects.count() == 600

    def test_the_identity_lookup_probes_indexes_at_any_table_size(self) -> None:
        customers = Customer.objects.bulk_create(Customer(user_id=f"usr_{n}") for n in range(4000))
        AnonymousId.objects.bulk_create(
            AnonymousId(anonymous_id=f"anon_{n}", customer=customer) for n, customer in enumerate(customers)
        )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE audiences_customer")
            cursor.execute("ANALYZE audiences_anonymousid")
        _, key = source_create(name="Web")
        assert post_batch(key, calls(range(100, 200)))["stored"] == 100
        name = next(row[0] for row in self._prepared() if row[1].startswith("WITH links AS"))
        users = [f"usr_{n}" for n in range(100, 200)]
        anonymous = [f"anon_{n}" for n in range(100, 200)]
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) EXECUTE {name}(%s::text[], %s::text[])", [anonymous, users])
            plan = cursor.fetchone()[0]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        scans = list(_scans(plan[0]["Plan"]))
        assert {"audiences_customer", "audiences_anonymousid"} <= {relation for _, relation in scans}
        assert all(node != "Seq Scan" for node, _ in scans), scans


def _scans(node: dict[str, Any]) -> Any:
    if "Relation Name" in node:
        yield node["Node Type"], node["Relation Name"]
    for child in node.get("Plans", []):
        yield from _scans(child)
