"""The computed traits API: CRUD through the engine's validation, errors naming the field, values and changes,
deletion refused while a segment uses the trait, roles, and bounded queries on the lists."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries
from rest_framework.test import APIClient

from audiences.models import ComputedTrait, ComputedTraitChange, ComputedTraitValue, Customer
from config.roles import Role
from segments.services import segment_save
from segments.traits.services import computed_trait_save

pytestmark = pytest.mark.django_db

PROJECTS: dict[str, Any] = {
    "key": "projects_created",
    "name": "Projects created",
    "kind": "count",
    "event": "Project Created",
}


@pytest.fixture
def growth_api(
    make_user: Callable[..., AbstractUser], api_client_for: Callable[[AbstractUser], APIClient]
) -> APIClient:
    return api_client_for(make_user(Role.GROWTH))


def hold(trait: ComputedTrait, customer: Customer, value: Any, **typed: Any) -> ComputedTraitValue:
    return ComputedTraitValue.objects.create(
        trait=trait, customer=customer, value=value, updated_at=timezone.now(), **typed
    )


def test_create_backfills_and_reports_progress(
    growth_api: APIClient, customer: Customer, django_capture_on_commit_callbacks: Any
) -> None:
    # Given Ada, who created one project (conftest), when a count of "Project Created" is defined
    with django_capture_on_commit_callbacks(execute=True):
        created = growth_api.post("/api/v1/computed-traits/", PROJECTS, format="json")
    # Then it is saved, and the backfill queued on commit computed her value
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["key"], body["kind"], body["where"], body["window_days"]) == ("projects_created", "count", [], None)
    fetched = growth_api.get(f"/api/v1/computed-traits/{body['id']}/").json()
    assert (fetched["backfill_status"], fetched["backfill_done"], fetched["backfill_total"]) == ("done", 1, 1)
    assert (fetched["backfill_percent"], fetched["customers_with_value"]) == (100, 1)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"key": "9lives"}, "key", "letters, digits and _ only"),
        ({"kind": "sum"}, "property", "this kind reads an event property"),
        ({"property": "plan"}, "property", "this kind does not read a property"),
        ({"event": "", "kind": "sum", "property": "amount"}, "event", "name the event it is read from"),
        ({"window_days": 7, "since_trial_start": True}, "window_days", "one window"),
        ({"window_days": 0}, "window_days", "between 1 and 3650"),
        ({"where": [{"property": "plan", "operator": "between", "value": 1}]}, "where", "where[0]"),
        ({"where": "plan = pro"}, "where", "where"),
        ({"kind": "trial_days_remaining"}, "kind", "comes from the trial"),
        ({"kind": "median"}, "kind", "not a valid choice"),
    ],
)
def test_invalid_definitions_are_a_400_naming_the_field(
    growth_api: APIClient, change: dict[str, Any], field: str, message: str
) -> None:
    response = growth_api.post("/api/v1/computed-traits/", {**PROJECTS, **change}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert list(body["details"]) == [field]
    assert message in body["details"][field][0]
    assert body["error"].startswith(f"{field}: ")
    assert not ComputedTrait.objects.exists()


def test_a_duplicate_key_is_refused_on_the_key(growth_api: APIClient) -> None:
    assert growth_api.post("/api/v1/computed-traits/", PROJECTS, format="json").status_code == 201
    again = growth_api.post("/api/v1/computed-traits/", {**PROJECTS, "name": "Again"}, format="json")
    assert again.status_code == 400
    assert "already exists" in again.json()["details"]["key"][0]


def test_update_keeps_unsent_fields_and_restarts_the_backfill_only_when_redefined(growth_api: APIClient) -> None:
    trait = computed_trait_save(**PROJECTS, window_days=7)
    ComputedTrait.objects.filter(pk=trait.pk).update(backfill_status="done", backfill_done=3, backfill_total=3)
    renamed = growth_api.patch(f"/api/v1/computed-traits/{trait.pk}/", {"name": "Projects (7d)"}, format="json")
    assert renamed.status_code == 200, renamed.content
    assert (renamed.json()["name"], renamed.json()["window_days"], renamed.json()["backfill_status"]) == (
        "Projects (7d)", 7, "done",
    )  # fmt: skip
    widened = growth_api.patch(f"/api/v1/computed-traits/{trait.pk}/", {"window_days": 30}, format="json").json()
    assert (widened["window_days"], widened["backfill_status"], widened["backfill_done"]) == (30, "pending", 0)
    refused = growth_api.patch(f"/api/v1/computed-traits/{trait.pk}/", {"window_days": 5000}, format="json")
    assert refused.status_code == 400
    assert "window_days" in refused.json()["details"]


def test_values_and_changes_are_paginated_with_customers(growth_api: APIClient) -> None:
    trait = computed_trait_save(**PROJECTS)
    people = [Customer.objects.create(user_id=f"u{i}", email=f"u{i}@x.test") for i in range(3)]
    for index, person in enumerate(people):
        hold(trait, person, index + 1, number_value=float(index + 1))
        ComputedTraitChange.objects.create(
            trait=trait, customer=person, old=index, new=index + 1, at=timezone.now() - timedelta(minutes=10 - index)
        )
    values = growth_api.get(f"/api/v1/computed-traits/{trait.pk}/values/", {"page_size": 2}).json()
    assert [(row["customer"]["user_id"], row["value"]) for row in values["results"]] == [("u2", 3), ("u1", 2)]
    rest = growth_api.get(values["next"]).json()
    assert [row["customer"]["user_id"] for row in rest["results"]] == ["u0"]
    changes = growth_api.get(f"/api/v1/computed-traits/{trait.pk}/changes/").json()["results"]
    assert [(c["customer"]["user_id"], c["old"], c["new"]) for c in changes] == [
        ("u2", 2, 3),
        ("u1", 1, 2),
        ("u0", 0, 1),
    ]


def test_list_queries_do_not_grow_with_traits_or_values(
    growth_api: APIClient, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    people = [Customer.objects.create(user_id=f"u{i}") for i in range(4)]
    for index in range(6):
        trait = computed_trait_save(**{**PROJECTS, "key": f"projects_{index}"})
        for person in people[: index % 4]:
            hold(trait, person, 1, number_value=1.0)
        ComputedTraitChange.objects.create(trait=trait, customer=people[0], old=0, new=1, at=timezone.now())
    with django_assert_max_num_queries(6):
        listed = growth_api.get("/api/v1/computed-traits/").json()["results"]
    assert [row["customers_with_value"] for row in listed] == [0, 1, 2, 3, 0, 1]
    with django_assert_max_num_queries(7):
        growth_api.get(f"/api/v1/computed-traits/{trait.pk}/values/")
    with django_assert_max_num_queries(7):
        growth_api.get(f"/api/v1/computed-traits/{trait.pk}/changes/")


def test_delete_is_refused_while_a_segment_compares_on_the_trait(growth_api: APIClient) -> None:
    trait = computed_trait_save(**PROJECTS)
    condition = {"type": "condition", "property": "computed.projects_created", "operator": "gte", "value": 3}
    segment = segment_save(name="Builders", conditions=condition)
    refused = growth_api.delete(f"/api/v1/computed-traits/{trait.pk}/")
    assert refused.status_code == 409
    assert "used by the segment Builders" in refused.json()["error"]
    segment.delete()
    assert growth_api.delete(f"/api/v1/computed-traits/{trait.pk}/").status_code == 204
    assert not ComputedTrait.objects.exists()


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.name)
def test_api_writes_by_role(
    make_user: Callable[..., AbstractUser], api_client_for: Callable[[AbstractUser], APIClient], role: Role
) -> None:
    client = api_client_for(make_user(role))
    existing = computed_trait_save(**{**PROJECTS, "key": "existing"})
    may_manage = role in (Role.ADMIN, Role.GROWTH)
    assert client.get("/api/v1/computed-traits/").status_code == 200
    assert client.get(f"/api/v1/computed-traits/{existing.pk}/values/").status_code == 200
    created = client.post("/api/v1/computed-traits/", PROJECTS, format="json")
    changed = client.patch(f"/api/v1/computed-traits/{existing.pk}/", {"name": "Renamed"}, format="json")
    deleted = client.delete(f"/api/v1/computed-traits/{existing.pk}/")
    expected = (201, 200, 204) if may_manage else (403, 403, 403)
    assert (created.status_code, changed.status_code, deleted.status_code) == expected
    assert ComputedTrait.objects.filter(key="projects_created").exists() == may_manage


def test_the_schema_describes_the_new_endpoints(growth_api: APIClient) -> None:
    paths = growth_api.get("/api/schema/?format=json").json()["paths"]
    for path in [
        "/api/v1/computed-traits/",
        "/api/v1/computed-traits/{id}/values/",
        "/api/v1/computed-traits/{id}/changes/",
        "/api/v1/segments/{id}/history/",
        "/api/v1/segments/{id}/changes/",
        "/api/v1/segments/{id}/live/",
    ]:
        assert path in paths, path
