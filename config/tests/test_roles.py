"""Roles: the groups exist with the declared permissions, and each surface enforces them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractUser, Group
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from audiences.models import Customer, Source
from config.roles import Role
from config.services import roles_sync
from conftest import TEST_PASSWORD

ALL_ROLES = list(Role)


@pytest.mark.django_db
class TestRoleGroups:
    def test_migrate_created_every_role(self) -> None:
        assert set(Group.objects.values_list("name", flat=True)) >= {role.value for role in Role}

    def test_sync_is_idempotent(self) -> None:
        first = roles_sync()
        second = roles_sync()
        assert first == second
        assert Group.objects.filter(name__in=[r.value for r in Role]).count() == 4

    def test_sync_restores_a_permission_removed_by_hand(self) -> None:
        rep = Group.objects.get(name=Role.SALES_REP.value)
        rep.permissions.clear()
        roles_sync()
        assert rep.permissions.filter(codename="view_customer").exists()

    def test_only_admin_may_manage_sources(self) -> None:
        for role in Role:
            may = Group.objects.get(name=role.value).permissions.filter(codename="add_source").exists()
            assert may == (role == Role.ADMIN), role


def signed_in(user: AbstractUser) -> Client:
    client = Client()
    assert client.login(username=user.get_username(), password=TEST_PASSWORD)
    return client


# (url name, kwargs, roles allowed)
PAGES: list[tuple[str, dict[str, int], set[Role]]] = [
    ("home", {}, set(Role)),
    ("customer-list", {}, set(Role)),
    ("customer-detail", {"pk": -1}, set(Role)),
    ("account-list", {}, set(Role)),
    ("trial-list", {}, set(Role)),
    ("segment-list", {}, set(Role)),
    ("segment-create", {}, {Role.ADMIN, Role.GROWTH, Role.CS}),
    ("computed-trait-list", {}, set(Role)),
    ("computed-trait-create", {}, {Role.ADMIN, Role.GROWTH}),
    ("subscription-list", {}, set(Role)),
    ("source-list", {}, {Role.ADMIN}),
    ("stripe-overview", {}, {Role.ADMIN}),
    ("billing-settings", {}, {Role.ADMIN}),
    ("tracking-plan-list", {}, {Role.ADMIN, Role.GROWTH}),
    ("event-debugger", {}, {Role.ADMIN, Role.GROWTH}),
    ("event-debugger-feed", {}, {Role.ADMIN, Role.GROWTH}),
    ("ingestion-error-list", {}, {Role.ADMIN, Role.GROWTH}),
    ("import-list", {}, {Role.ADMIN, Role.GROWTH}),
    ("destination-list", {}, {Role.ADMIN, Role.GROWTH, Role.CS}),
    ("destination-create", {}, {Role.ADMIN, Role.GROWTH}),
    ("admin:index", {}, {Role.ADMIN}),
    ("admin:auth_user_changelist", {}, {Role.ADMIN}),
]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ALL_ROLES, ids=lambda r: r.name)
@pytest.mark.parametrize(("url_name", "kwargs", "allowed"), PAGES, ids=[p[0] for p in PAGES])
def test_pages_by_role(
    make_user: Callable[..., AbstractUser],
    customer: Customer,
    role: Role,
    url_name: str,
    kwargs: dict[str, int],
    allowed: set[Role],
) -> None:
    if kwargs.get("pk") == -1:
        kwargs = {"pk": customer.pk}
    response = signed_in(make_user(role)).get(reverse(url_name, kwargs=kwargs), follow=True)
    assert response.status_code == (200 if role in allowed else 403)


@pytest.mark.django_db
@pytest.mark.parametrize("url_name", ["home", "customer-list", "source-list", "trial-list", "admin:index"])
def test_anonymous_visitors_are_sent_to_sign_in(client: Client, url_name: str) -> None:
    response = client.get(reverse(url_name), follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("login"))
    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("role", ALL_ROLES, ids=lambda r: r.name)
def test_only_admins_create_sources_through_the_ui(make_user: Callable[..., AbstractUser], role: Role) -> None:
    response = signed_in(make_user(role)).post(reverse("source-list"), {"name": "Web", "kind": "tracking_api"})
    if role == Role.ADMIN:
        assert response.status_code == 200
        assert Source.objects.filter(name="Web").exists()
    else:
        assert response.status_code == 403
        assert not Source.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("role", ALL_ROLES, ids=lambda r: r.name)
def test_api_writes_by_role(
    make_user: Callable[..., AbstractUser], api_client_for: Callable[[AbstractUser], APIClient], role: Role
) -> None:
    client = api_client_for(make_user(role))
    created = client.post("/api/v1/sources/", {"name": "Server"}, format="json")
    listed = client.get("/api/v1/sources/")
    customers = client.get("/api/v1/customers/")
    assert customers.status_code == 200
    if role == Role.ADMIN:
        assert (created.status_code, listed.status_code) == (201, 200)
    else:
        assert (created.status_code, listed.status_code) == (403, 403)
        assert created.json()["error"]
        assert not Source.objects.exists()


@pytest.mark.django_db
def test_a_user_without_a_role_sees_no_customers(django_user_model: type[AbstractUser]) -> None:
    user = django_user_model.objects.create_user(username="nobody", password=TEST_PASSWORD)
    client = signed_in(user)
    assert client.get(reverse("customer-list")).status_code == 403
    api = APIClient()
    api.force_authenticate(user)
    assert api.get("/api/v1/customers/").status_code == 403


@pytest.mark.django_db
def test_customer_api_is_read_only(
    admin_user: AbstractUser, api_client_for: Callable[[AbstractUser], APIClient]
) -> None:
    response = api_client_for(admin_user).post("/api/v1/customers/", {"email": "x@y.z"}, format="json")
    assert response.status_code == 405
    assert "not allowed" in response.json()["error"]
