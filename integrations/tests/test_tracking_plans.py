"""Tracking plans: each enforcement mode, schema checks, and the compiled-plan cache following edits."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from django.test import Client, TestCase

from audiences.models import Event, Source
from audiences.services import source_create
from integrations.tracking.models import SourceTrackingPlan, TrackingPlan, TrackingPlanViolation
from integrations.tracking.plans import (
    InvalidSchema,
    schema_check,
    source_tracking_plan_set,
    tracking_plan_event_delete,
    tracking_plan_event_save,
)

PROJECT_CREATED = {
    "type": "object",
    "properties": {"template": {"type": "string"}, "seats": {"type": "integer", "minimum": 1}},
    "required": ["template"],
}


@pytest.fixture
def planned_source(db: Any) -> tuple[Source, str, TrackingPlan]:
    source, key = source_create(name="Web app")
    plan = TrackingPlan.objects.create(
        name="Web",
        identify_schema={"type": "object", "properties": {"email": {"type": "string", "format": "email"}}},
    )
    tracking_plan_event_save(plan=plan, event_name="Project Created", properties_schema=PROJECT_CREATED)
    return source, key, plan


def send(key: str, batch: list[dict[str, Any]]) -> dict[str, Any]:
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = Client().post(
            "/v1/batch", data=json.dumps({"batch": batch}), content_type="application/json", HTTP_AUTHORIZATION=auth
        )
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


GOOD = {"type": "track", "userId": "u", "event": "Project Created", "properties": {"template": "kanban"}}
INVALID = {"type": "track", "userId": "u", "event": "Project Created", "properties": {"seats": 0}}
EXTRA = {"type": "track", "userId": "u", "event": "Project Created", "properties": {"template": "x", "color": "red"}}
UNPLANNED = {"type": "track", "userId": "u", "event": "Button Clicked", "properties": {}}


@pytest.mark.django_db
class TestModes:
    def test_without_a_plan_everything_is_stored(self, planned_source: tuple[Source, str, TrackingPlan]) -> None:
        _, key, _ = planned_source
        assert send(key, [GOOD, INVALID, UNPLANNED])["stored"] == 3
        assert not TrackingPlanViolation.objects.exists()

    def test_allow_checks_nothing(self, planned_source: tuple[Source, str, TrackingPlan]) -> None:
        source, key, plan = planned_source
        source_tracking_plan_set(source=source, plan=plan, mode=SourceTrackingPlan.Mode.ALLOW)
        assert send(key, [INVALID, UNPLANNED])["stored"] == 2
        assert not TrackingPlanViolation.objects.exists()

    def test_flag_stores_and_records(self, planned_source: tuple[Source, str, TrackingPlan]) -> None:
        source, key, plan = planned_source
        source_tracking_plan_set(source=source, plan=plan, mode=SourceTrackingPlan.Mode.FLAG)
        assert send(key, [GOOD, INVALID, UNPLANNED])["stored"] == 3
        kinds = sorted(TrackingPlanViolation.objects.values_list("event_name", "kind", "action"))
        assert kinds == [("Button Clicked", "unplanned_event", "stored"), ("Project Created", "invalid", "stored")]
        invalid = TrackingPlanViolation.objects.get(kind="invalid")
        assert "'template' is a required property" in invalid.errors
        assert any(error.startswith("seats:") for error in invalid.errors)

    def test_omit_drops_unplanned_properties(self, planned_source: tuple[Source, str, TrackingPlan]) -> None:
        source, key, plan = planned_source
        source_tracking_plan_set(source=source, plan=plan, mode=SourceTrackingPlan.Mode.OMIT)
        send(key, [EXTRA])
        assert Event.objects.get().properties == {"template": "x"}
        violation = TrackingPlanViolation.objects.get()
        assert (violation.kind, violation.action, violation.errors) == (
            "unplanned_property",
            "omitted",
            ["color: not in the plan, omitted"],
        )

    def test_omit_applies_to_identify_traits(self, planned_source: tuple[Source, str, TrackingPlan]) -> None:
        source, key, plan = planned_source
        source_tracking_plan_set(source=source, plan=plan, mode=SourceTrackingPlan.Mode.OMIT)
        send(key, [{"type": "identify", "userId": "u", "traits": {"email": "a@b.test", "ssn": "123"}}])
        assert Event.objects.get().properties == {"email": "a@b.test"}
        assert Event.objects.get().customer.traits == {"email": "a@b.test"}

    def test_block_drops_unplanned_events_only(self, planned_source: tuple[Source, str, TrackingPlan]) -> None:
        source, key, plan = planned_source
        source_tracking_plan_set(source=source, plan=plan, mode=SourceTrackingPlan.Mode.BLOCK)
        result = send(key, [GOOD, UNPLANNED, INVALID])
        assert (result["stored"], result["blocked"]) == (2, 1)
        assert not Event.objects.filter(name="Button Clicked").exists()
        assert TrackingPlanViolation.objects.get(kind="unplanned_event").action == "blocked"

    def test_edits_take_effect_on_the_next_batch(self, planned_source: tuple[Source, str, TrackingPlan]) -> None:
        source, key, plan = planned_source
        source_tracking_plan_set(source=source, plan=plan, mode=SourceTrackingPlan.Mode.BLOCK)
        assert send(key, [UNPLANNED])["blocked"] == 1
        tracking_plan_event_save(plan=plan, event_name="Button Clicked", properties_schema={})
        assert send(key, [{**UNPLANNED, "messageId": "again"}])["stored"] == 1
        tracking_plan_event_delete(event=plan.events.get(event_name="Button Clicked"))
        assert send(key, [{**UNPLANNED, "messageId": "third"}])["blocked"] == 1


class TestSchemaCheck:
    @pytest.mark.parametrize("schema", [{"type": "object"}, {}, PROJECT_CREATED])
    def test_valid_schemas_pass(self, schema: dict[str, Any]) -> None:
        schema_check(schema)

    @pytest.mark.parametrize(
        ("schema", "message"),
        [([1], "JSON object"), ({"type": "objekt"}, "type"), ({"properties": {"a": {"minimum": "x"}}}, "minimum")],
    )
    def test_invalid_schemas_are_named(self, schema: Any, message: str) -> None:
        with pytest.raises(InvalidSchema, match=message):
            schema_check(schema)
