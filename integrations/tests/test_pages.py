"""Integration pages: editing tracking plans through forms, the debugger feed, the ingestion-error log."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audiences.models import Customer, Event, Source
from audiences.services import source_create
from config.roles import Role
from conftest import TEST_PASSWORD
from integrations.tracking.models import IngestionError, SourceTrackingPlan, TrackingPlan, TrackingPlanViolation


def signed_in(user: AbstractUser) -> Client:
    client = Client()
    assert client.login(username=user.get_username(), password=TEST_PASSWORD)
    return client


@pytest.fixture
def growth(make_user: Any) -> Client:
    return signed_in(make_user(Role.GROWTH))


@pytest.mark.django_db
class TestTrackingPlanPages:
    def test_growth_builds_a_plan_and_connects_a_source(self, growth: Client) -> None:
        source, _ = source_create(name="Web app")
        response = growth.post(
            reverse("tracking-plan-list"), {"name": "Web", "description": "", "identify_schema": "{}"}
        )
        plan = TrackingPlan.objects.get()
        assert response.headers["Location"] == reverse("tracking-plan-detail", kwargs={"pk": plan.pk})
        detail = reverse("tracking-plan-detail", kwargs={"pk": plan.pk})
        schema = {"type": "object", "required": ["template"]}
        growth.post(
            detail,
            {
                "action": "event",
                "prefix": "new",
                "new-event_name": "Project Created",
                "new-properties_schema": json.dumps(schema),
            },
        )
        growth.post(detail, {"action": "source", "source": source.pk, "mode": "block"})
        assert plan.events.get().properties_schema == schema
        assert SourceTrackingPlan.objects.get().mode == "block"
        page = growth.get(detail).content.decode()
        assert "Project Created" in page
        assert "Block: drop unplanned events" in page

    def test_an_invalid_schema_is_a_form_error_and_nothing_changes(self, growth: Client) -> None:
        plan = TrackingPlan.objects.create(name="Web")
        detail = reverse("tracking-plan-detail", kwargs={"pk": plan.pk})
        response = growth.post(
            detail,
            {"action": "event", "prefix": "new", "new-event_name": "X", "new-properties_schema": '{"type": "objekt"}'},
        )
        assert response.status_code == 400
        assert "Not a valid JSON Schema" in response.content.decode()
        response = growth.post(
            detail, {"action": "event", "prefix": "new", "new-event_name": "X", "new-properties_schema": "{oops"}
        )
        assert response.status_code == 400
        assert "Enter a valid JSON" in response.content.decode()
        assert not plan.events.exists()

    def test_removing_an_event_needs_a_valid_id(self, growth: Client) -> None:
        plan = TrackingPlan.objects.create(name="Web")
        detail = reverse("tracking-plan-detail", kwargs={"pk": plan.pk})
        assert growth.post(detail, {"action": "delete_event", "event": "abc"}).status_code == 400
        assert growth.post(detail, {"action": "delete_event", "event": "999"}).status_code == 404
        assert growth.post(detail, {"action": "frobnicate"}).status_code == 400

    def test_disconnecting_a_source(self, growth: Client) -> None:
        source, _ = source_create(name="Web app")
        plan = TrackingPlan.objects.create(name="Web")
        SourceTrackingPlan.objects.create(source=source, plan=plan, mode="flag")
        growth.post(
            reverse("tracking-plan-detail", kwargs={"pk": plan.pk}),
            {"action": "source", "source": source.pk, "mode": "disconnect"},
        )
        assert not SourceTrackingPlan.objects.exists()

    def test_violations_are_counted_per_event(self, growth: Client) -> None:
        source, _ = source_create(name="Web app")
        plan = TrackingPlan.objects.create(name="Web")
        now = timezone.now()
        TrackingPlanViolation.objects.bulk_create(
            [
                TrackingPlanViolation(
                    source=source, plan=plan, received_at=now, event_name=name, kind="unplanned_event", action="stored"
                )
                for name in ["Clicked", "Clicked", "Viewed"]
            ]
        )
        page = growth.get(reverse("tracking-plan-detail", kwargs={"pk": plan.pk}))
        assert [(row["event_name"], row["count"]) for row in page.context["violations"]] == [
            ("Clicked", 2),
            ("Viewed", 1),
        ]
        listing = growth.get(reverse("tracking-plan-violations", kwargs={"pk": plan.pk}), {"event": "Viewed"})
        assert [v.event_name for v in listing.context["page"].items] == ["Viewed"]

    def test_a_rep_can_neither_see_nor_edit_plans(self, make_user: Any) -> None:
        rep = signed_in(make_user(Role.SALES_REP))
        plan = TrackingPlan.objects.create(name="Web")
        assert rep.get(reverse("tracking-plan-list")).status_code == 403
        response = rep.post(reverse("tracking-plan-detail", kwargs={"pk": plan.pk}), {"action": "plan", "name": "Mine"})
        assert response.status_code == 403
        plan.refresh_from_db()
        assert plan.name == "Web"


@pytest.mark.django_db
class TestDebuggerFeed:
    def test_feed_returns_newest_first_and_only_newer_on_poll(self, growth: Client) -> None:
        source, _ = source_create(name="Web app")
        other, _ = source_create(name="Mobile")
        customer = Customer.objects.create(user_id="u")
        now = timezone.now()
        events = Event.objects.bulk_create(
            [
                Event(
                    source=s,
                    customer=customer,
                    message_id=f"m{i}",
                    type="track",
                    name=f"E{i}",
                    timestamp=now,
                    received_at=now,
                )
                for i, s in enumerate([source, source, other])
            ]
        )
        feed = growth.get(reverse("event-debugger-feed")).json()["events"]
        assert [e["name"] for e in feed] == ["E2", "E1", "E0"]
        assert feed[0]["customer_url"] == reverse("customer-detail", kwargs={"pk": customer.pk})
        only_web = growth.get(reverse("event-debugger-feed"), {"source": source.pk}).json()["events"]
        assert [e["name"] for e in only_web] == ["E1", "E0"]
        newer = growth.get(reverse("event-debugger-feed"), {"after": events[1].pk}).json()["events"]
        assert [e["name"] for e in newer] == ["E2"]
        assert growth.get(reverse("event-debugger")).status_code == 200


@pytest.mark.django_db
class TestIngestionErrors:
    def test_errors_are_listed_and_filtered_by_source(self, growth: Client) -> None:
        web, _ = source_create(name="Web app")
        mobile, _ = source_create(name="Mobile")
        now = timezone.now()
        IngestionError.objects.create(source=web, received_at=now, route="batch", error="track needs an event name")
        IngestionError.objects.create(
            source=mobile, received_at=now, route="t", error="userId or anonymousId is required"
        )
        page = growth.get(reverse("ingestion-error-list"), {"source": web.pk})
        assert [e.error for e in page.context["page"].items] == ["track needs an event name"]
        assert Source.objects.count() == 2
