"""The segments API: catalogue, preview, CRUD with precise validation errors, members, evaluate, explain, roles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from pytest_django import DjangoAssertNumQueries
from rest_framework.test import APIClient

from audiences.models import Customer
from config.roles import Role
from segments.models import Segment

HIGH_MRR = {"type": "condition", "property": "subscriber.mrr", "operator": "gte", "value": 100}


@pytest.fixture
def growth_api(
    make_user: Callable[..., AbstractUser], api_client_for: Callable[[AbstractUser], APIClient]
) -> APIClient:
    return api_client_for(make_user(Role.GROWTH))


@pytest.fixture
def people(db: Any) -> dict[str, Customer]:
    return {
        "ada": Customer.objects.create(user_id="ada", mrr_cents=20000, traits={}),
        "bob": Customer.objects.create(user_id="bob", mrr_cents=5000),
    }


@pytest.mark.django_db
class TestSegmentsApi:
    def test_catalogue_lists_properties_with_their_operators(self, growth_api: APIClient) -> None:
        body = growth_api.get("/api/v1/segments/catalogue/").json()
        mrr = next(p for p in body["properties"] if p["key"] == "subscriber.mrr")
        assert (mrr["type"], "between" in mrr["operators"], "contains" in mrr["operators"]) == ("number", True, False)
        assert "at_least" in body["event_operators"]

    def test_custom_properties_join_the_catalogue(self, growth_api: APIClient) -> None:
        assert (
            growth_api.post("/api/v1/custom-properties/", {"key": "seats", "value_type": "number"}).status_code == 201
        )
        keys = [p["key"] for p in growth_api.get("/api/v1/segments/catalogue/").json()["properties"]]
        assert "trait.seats" in keys
        bad = growth_api.post("/api/v1/custom-properties/", {"key": "9 lives", "value_type": "number"})
        assert bad.status_code == 400
        assert "Letters, digits and _ only" in bad.json()["error"]

    def test_preview_counts_without_saving(self, growth_api: APIClient, people: dict[str, Customer]) -> None:
        body = growth_api.post("/api/v1/segments/preview/", {"conditions": HIGH_MRR}, format="json").json()
        assert body["count"] == 1
        assert [row["user_id"] for row in body["sample"]] == ["ada"]
        assert not Segment.objects.exists()

    def test_invalid_trees_are_refused_naming_the_leaf(self, growth_api: APIClient) -> None:
        tree = {"type": "group", "operator": "and", "children": [HIGH_MRR, {**HIGH_MRR, "operator": "contains"}]}
        response = growth_api.post("/api/v1/segments/", {"name": "x", "conditions": tree}, format="json")
        assert response.status_code == 400
        assert response.json()["error"].startswith(
            "conditions: children[1]: 'contains' does not apply to subscriber.mrr"
        )
        preview = growth_api.post("/api/v1/segments/preview/", {"conditions": tree}, format="json")
        assert preview.status_code == 400
        assert not Segment.objects.exists()

    def test_create_evaluate_members_explain_update(
        self, growth_api: APIClient, people: dict[str, Customer], django_assert_max_num_queries: DjangoAssertNumQueries
    ) -> None:
        created = growth_api.post(
            "/api/v1/segments/", {"name": "High MRR", "tags": ["revenue"], "conditions": HIGH_MRR}, format="json"
        )
        assert created.status_code == 201, created.content
        segment_id = created.json()["id"]
        assert created.json()["tags"] == ["revenue"]
        evaluated = growth_api.post(f"/api/v1/segments/{segment_id}/evaluate/").json()
        assert (evaluated["entered"], evaluated["exited"], evaluated["members"]) == (1, 0, 1)
        with django_assert_max_num_queries(8):
            members = growth_api.get(f"/api/v1/segments/{segment_id}/members/").json()["results"]
        assert [m["user_id"] for m in members] == ["ada"]
        explained = growth_api.get(f"/api/v1/segments/{segment_id}/explain/", {"customer": people["bob"].pk}).json()
        assert explained["matches"] is False
        assert explained["leaves"][0] == {
            "path": "children[0]", "description": "subscriber.mrr gte 100.0", "actual": 50.0, "held": False,
        }  # fmt: skip
        assert growth_api.get(f"/api/v1/segments/{segment_id}/explain/").status_code == 400
        lower = {**HIGH_MRR, "value": 10}
        updated = growth_api.patch(f"/api/v1/segments/{segment_id}/", {"conditions": lower}, format="json")
        assert updated.status_code == 200
        assert growth_api.post(f"/api/v1/segments/{segment_id}/evaluate/").json()["entered"] == 1
        assert [s["name"] for s in growth_api.get("/api/v1/segments/", {"tag": "revenue"}).json()["results"]] == [
            "High MRR"
        ]
        assert growth_api.get("/api/v1/segments/", {"tag": "other"}).json()["results"] == []

    def test_reps_read_but_do_not_write(
        self, make_user: Callable[..., AbstractUser], api_client_for: Callable[[AbstractUser], APIClient]
    ) -> None:
        rep = api_client_for(make_user(Role.SALES_REP))
        assert rep.get("/api/v1/segments/").status_code == 200
        response = rep.post("/api/v1/segments/", {"name": "x", "conditions": HIGH_MRR}, format="json")
        assert response.status_code == 403


@pytest.mark.django_db
def test_a_cycle_through_the_api_is_a_400(growth_api: APIClient) -> None:
    first = growth_api.post("/api/v1/segments/", {"name": "A", "conditions": HIGH_MRR}, format="json").json()
    in_first = {"type": "segment", "segment": first["id"], "operator": "in"}
    second = growth_api.post("/api/v1/segments/", {"name": "B", "conditions": in_first}, format="json").json()
    in_second = {"type": "segment", "segment": second["id"], "operator": "in"}
    response = growth_api.patch(f"/api/v1/segments/{first['id']}/", {"conditions": in_second}, format="json")
    assert response.status_code == 400
    assert f"segment {first['id']} refers back to itself" in response.json()["error"]


@pytest.mark.django_db
def test_preview_runs_a_fixed_number_of_queries(
    growth_api: APIClient, people: dict[str, Customer], django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    Customer.objects.bulk_create([Customer(user_id=f"c{i}", mrr_cents=i * 100) for i in range(200)])
    tree = {
        "type": "group",
        "operator": "or",
        "children": [HIGH_MRR, {"type": "event", "event": "X", "operator": "at_least", "count": 1}],
    }
    with django_assert_max_num_queries(5):  # auth, permission, count, sample
        body = growth_api.post("/api/v1/segments/preview/", {"conditions": tree}, format="json").json()
    assert body["count"] == 101  # ada and the 100 customers at or above $100


@pytest.mark.django_db
def test_evaluating_a_segment_whose_property_was_deleted_is_a_400(growth_api: APIClient) -> None:
    from segments.models import CustomProperty
    from segments.services import segment_save

    CustomProperty.objects.create(key="tier", value_type="string")
    segment = segment_save(
        name="Gold", conditions={"type": "condition", "property": "trait.tier", "operator": "equals", "value": "gold"}
    )
    CustomProperty.objects.all().delete()
    response = growth_api.post(f"/api/v1/segments/{segment.pk}/evaluate/")
    assert response.status_code == 400
    assert "unknown property 'trait.tier'" in response.json()["error"]


@pytest.mark.django_db
def test_custom_properties_are_declared_per_scope(admin_user: Any, api_client_for: Any) -> None:
    client = api_client_for(admin_user)
    for scope in ("customer", "account"):
        created = client.post(
            "/api/v1/custom-properties/", {"scope": scope, "key": "tier", "value_type": "string"}, format="json"
        )
        assert created.status_code == 201, created.content
    again = client.post(
        "/api/v1/custom-properties/", {"scope": "account", "key": "tier", "value_type": "number"}, format="json"
    )
    assert again.status_code == 400
    keys = {p["key"] for p in client.get("/api/v1/segments/catalogue/").json()["properties"]}
    assert {"trait.tier", "account.trait.tier"} <= keys
