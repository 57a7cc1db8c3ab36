"""Versions (author, readable diff, restore) and test mode (a draft never changes live membership)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from rest_framework.test import APIClient

from audiences.models import Customer
from config.roles import Role
from segments.evaluation import segment_evaluate
from segments.models import Segment, SegmentMembership, SegmentMembershipChange
from segments.services import segment_save
from segments.usage import SegmentUse, register_usage, unregister_usage

HIGH_MRR = {"type": "condition", "property": "subscriber.mrr", "operator": "gte", "value": 100}
LOW_MRR = {"type": "condition", "property": "subscriber.mrr", "operator": "gte", "value": 10}


@pytest.fixture
def growth(make_user: Callable[..., AbstractUser]) -> AbstractUser:
    return make_user(Role.GROWTH)


@pytest.fixture
def api(growth: AbstractUser, api_client_for: Callable[[AbstractUser], APIClient]) -> APIClient:
    return api_client_for(growth)


@pytest.fixture
def live(db: Any, growth: AbstractUser) -> Segment:
    Customer.objects.create(user_id="ada", mrr_cents=20000)
    Customer.objects.create(user_id="bob", mrr_cents=5000)
    Customer.objects.create(user_id="cy", mrr_cents=0)
    segment = segment_save(name="High MRR", conditions=HIGH_MRR, tags=["revenue"], owner=growth)
    segment_evaluate(segment=segment)
    return segment


@pytest.mark.django_db
class TestVersions:
    def test_each_change_is_a_version_with_author_and_diff(
        self, live: Segment, api: APIClient, growth: AbstractUser
    ) -> None:
        segment_save(segment=live, name="High MRR", conditions=HIGH_MRR, tags=["revenue"], owner=growth)  # no change
        segment_save(segment=live, name="Paying", conditions=LOW_MRR, tags=["revenue", "cs"], owner=growth)
        versions = api.get(f"/api/v1/segments/{live.pk}/versions/").json()
        assert [v["number"] for v in versions] == [2, 1]
        assert versions[0]["author"] == growth.get_username()
        assert "-name: High MRR" in versions[0]["diff"]
        assert "+name: Paying" in versions[0]["diff"]
        assert "+  - subscriber.mrr gte 10.0" in versions[0]["diff"]
        assert "+tags: cs, revenue" in versions[0]["diff"]

    def test_restore_brings_back_an_old_version_as_a_new_one(
        self, live: Segment, api: APIClient, growth: AbstractUser
    ) -> None:
        segment_save(segment=live, name="Paying", conditions=LOW_MRR, owner=growth)
        restored = api.post(f"/api/v1/segments/{live.pk}/restore/", {"version": 1}, format="json")
        assert restored.status_code == 200
        live.refresh_from_db()
        assert (live.name, live.conditions["children"][0]["value"]) == ("High MRR", 100.0)
        newest = api.get(f"/api/v1/segments/{live.pk}/versions/").json()[0]
        assert (newest["number"], newest["note"]) == (3, "restored version 1")
        assert api.post(f"/api/v1/segments/{live.pk}/restore/", {"version": 99}, format="json").status_code == 404


@pytest.mark.django_db
class TestDrafts:
    def test_a_draft_shows_who_would_enter_and_exit_without_touching_live(self, live: Segment, api: APIClient) -> None:
        members_before = list(SegmentMembership.objects.values_list("pk", "customer_id"))
        changes_before = SegmentMembershipChange.objects.count()
        draft = {
            "type": "group",
            "operator": "and",
            "children": [
                {**LOW_MRR, "value": 40},
                {"type": "condition", "property": "subscriber.mrr", "operator": "lt", "value": 150},
            ],
        }
        body = api.post(f"/api/v1/segments/{live.pk}/draft/", {"conditions": draft}, format="json").json()
        assert (body["count"], body["would_enter"], body["would_exit"]) == (1, 1, 1)
        assert [c["user_id"] for c in body["enter_sample"]] == ["bob"]
        assert [c["user_id"] for c in body["exit_sample"]] == ["ada"]
        assert list(SegmentMembership.objects.values_list("pk", "customer_id")) == members_before
        assert SegmentMembershipChange.objects.count() == changes_before
        live.refresh_from_db()
        assert live.conditions["children"][0]["value"] == 100.0

    def test_an_invalid_draft_is_refused(self, live: Segment, api: APIClient) -> None:
        response = api.post(
            f"/api/v1/segments/{live.pk}/draft/", {"conditions": {**HIGH_MRR, "value": "x"}}, format="json"
        )
        assert response.status_code == 400
        assert "value must be a number" in response.json()["error"]

    def test_everything_using_the_segment_is_listed(self, live: Segment, api: APIClient) -> None:
        def offer_rules(segment: Segment) -> Iterable[SegmentUse]:
            return [SegmentUse(kind="offer rule", name="Save high-MRR accounts", url="/offers/rules/1/")]

        register_usage(offer_rules)
        try:
            body = api.post(f"/api/v1/segments/{live.pk}/draft/", {"conditions": HIGH_MRR}, format="json").json()
        finally:
            unregister_usage(offer_rules)
        assert body["used_by"] == [{"kind": "offer rule", "name": "Save high-MRR accounts", "url": "/offers/rules/1/"}]


@pytest.mark.django_db
class TestSavedDrafts:
    def test_save_force_test_customers_and_publish(self, live: Segment, api: APIClient) -> None:
        tester = Customer.objects.create(user_id="qa-bot", mrr_cents=0, is_test=True)
        members_before = list(SegmentMembership.objects.values_list("pk", "customer_id"))
        saved = api.put(
            f"/api/v1/segments/{live.pk}/draft/", {"conditions": LOW_MRR, "test_customers": [tester.pk]}, format="json"
        )
        assert saved.status_code == 200, saved.content
        body = saved.json()
        assert (body["count"], body["would_enter"], body["would_exit"]) == (3, 2, 0)  # bob and the forced tester
        assert {c["user_id"] for c in body["enter_sample"]} == {"bob", "qa-bot"}
        assert body["live"]["children"][0]["value"] == 100.0
        assert list(SegmentMembership.objects.values_list("pk", "customer_id")) == members_before
        assert api.get(f"/api/v1/segments/{live.pk}/draft/").json()["would_enter"] == 2

        published = api.post(f"/api/v1/segments/{live.pk}/publish/").json()
        assert (published["entered"], published["members"]) == (1, 2)  # bob; the tester was only in the draft
        live.refresh_from_db()
        assert live.draft_conditions is None
        assert live.conditions["children"][0]["value"] == 10.0
        assert api.get(f"/api/v1/segments/{live.pk}/versions/").json()[0]["note"] == "published draft"
        assert api.post(f"/api/v1/segments/{live.pk}/publish/").status_code == 400

    def test_only_flagged_test_customers_can_be_forced(self, live: Segment, api: APIClient) -> None:
        real = Customer.objects.get(user_id="cy")
        response = api.put(
            f"/api/v1/segments/{live.pk}/draft/", {"conditions": LOW_MRR, "test_customers": [real.pk]}, format="json"
        )
        assert response.status_code == 400
        assert "Only test customers" in response.json()["error"]
        live.refresh_from_db()
        assert live.draft_conditions is None

    def test_discard(self, live: Segment, api: APIClient) -> None:
        api.put(f"/api/v1/segments/{live.pk}/draft/", {"conditions": LOW_MRR}, format="json")
        assert api.delete(f"/api/v1/segments/{live.pk}/draft/").status_code == 204
        live.refresh_from_db()
        assert live.draft_conditions is None
