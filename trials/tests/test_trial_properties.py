"""Trial stage and scores in segments: `trial.*` and `score.*` compile to SQL on the customer's current trial,
explain reads the same values, and a live audience on them follows the stored-batch hook."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.test import TestCase
from django.utils import timezone

from audiences.ingestion import IncomingMessage, messages_ingest
from audiences.models import Customer, Source
from segments.compiler import compile_tree
from segments.conditions import parse_tree
from segments.models import Segment, SegmentMembership
from segments.selectors import explain
from segments.services import segment_save
from trials.loop.models import Trial

pytestmark = pytest.mark.django_db


def leaf(key: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"type": "group", "operator": "and", "children": [
        {"type": "condition", "property": key, "operator": operator, "value": value}
    ]}  # fmt: skip


@pytest.fixture
def trials() -> dict[str, Customer]:
    now = timezone.now()
    made = {}
    for name, stage, model, fit, pql, days in (
        ("ann", "habit", "opt_in", 80, 65, 3),
        ("ben", "trigger", "opt_out", 10, 5, 10),
        ("cat", "recover", "opt_in", 40, 30, -2),
    ):
        customer = Customer.objects.create(user_id=name, email=f"{name}@x.example")
        Trial.objects.create(
            customer=customer,
            model=model,
            started_at=now - timedelta(days=5),
            ends_at=now + timedelta(days=days, hours=1),
            stage=stage,
            stage_changed_at=now,
            fit_score=fit,
            pql_score=pql,
        )
        made[name] = customer
    made["dan"] = Customer.objects.create(user_id="dan")  # no trial
    return made


CASES = [
    (leaf("trial.stage", "equals", "habit"), {"ann"}),
    (leaf("trial.stage", "not_equals", "habit"), {"ben", "cat", "dan"}),
    (leaf("trial.stage", "one_of", ["trigger", "recover"]), {"ben", "cat"}),
    (leaf("trial.days_left", "lte", 3), {"ann", "cat"}),
    (leaf("trial.days_left", "equals", 10), {"ben"}),
    (leaf("trial.days_left", "not_equals", 10), {"ann", "cat", "dan"}),
    (leaf("trial.opt_in", "is_true"), {"ann", "cat"}),
    (leaf("trial.opt_in", "is_false"), {"ben"}),
    (leaf("trial.opt_in", "is_not_set"), {"dan"}),
    (leaf("score.fit", "gte", 40), {"ann", "cat"}),
    (leaf("score.pql", "between", [20, 70]), {"ann", "cat"}),
    (leaf("score.pql", "lt", 10), {"ben"}),
]


@pytest.mark.parametrize(("conditions", "expected"), CASES)
def test_trial_properties_compile_and_explain_agrees(
    trials: dict[str, Customer], conditions: dict[str, Any], expected: set[str]
) -> None:
    now = timezone.now()
    matched = set(Customer.objects.filter(compile_tree(parse_tree(conditions), now)).values_list("user_id", flat=True))
    assert matched == expected
    for name, customer in trials.items():
        explained = explain(conditions, customer, now=now)
        assert explained["matches"] == (name in expected)
    actual = explain(leaf("trial.days_left", "lte", 3), trials["ann"], now=now)["leaves"][0]["actual"]
    assert actual == 3
    assert explain(leaf("score.pql", "gt", 1), trials["dan"], now=now)["leaves"][0]["actual"] is None


def test_a_live_audience_on_trial_stage_follows_ingested_events(source: Source) -> None:
    segment = segment_save(name="Activated", conditions=leaf("trial.stage", "equals", "activate"))
    Segment.objects.filter(pk=segment.pk).update(is_live=True)

    def message(name: str, kind: str = "track", **traits: Any) -> IncomingMessage:
        now = timezone.now()
        return IncomingMessage(
            type=kind, message_id=f"m-{time.monotonic_ns()}", user_id="usr_liv", anonymous_id=None, name=name,
            properties=traits, context={}, timestamp=now, received_at=now, traits=traits,
        )  # fmt: skip

    with TestCase.captureOnCommitCallbacks(execute=True):
        messages_ingest(source=source, messages=[message("", "identify", email="liv@gmail.com"), message("Signed Up")])
    assert not SegmentMembership.objects.filter(segment=segment).exists()
    with TestCase.captureOnCommitCallbacks(execute=True):
        messages_ingest(source=source, messages=[message("Project Created"), message("Teammate Invited")])
    assert list(SegmentMembership.objects.filter(segment=segment).values_list("customer__user_id", flat=True)) == [
        "usr_liv"
    ]
