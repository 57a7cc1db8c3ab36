"""Write keys: stored hashed, shown once, rotation retires the old key."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from audiences.models import Source
from audiences.selectors import source_for_write_key
from audiences.services import source_create, source_rotate_key
from conftest import TEST_PASSWORD


@pytest.mark.django_db
class TestWriteKeys:
    def test_key_is_not_stored_in_clear(self) -> None:
        source, key = source_create(name="Web")
        assert key not in source.write_key_hash
        assert source_for_write_key(key) == source

    def test_rotation_retires_the_old_key(self) -> None:
        source, old = source_create(name="Web")
        new = source_rotate_key(source=source)
        assert source_for_write_key(old) is None
        assert source_for_write_key(new) == source
        assert source.key_rotated_at is not None

    def test_inactive_source_does_not_authenticate(self) -> None:
        source, key = source_create(name="Web")
        Source.objects.filter(pk=source.pk).update(is_active=False)
        assert source_for_write_key(key) is None


@pytest.mark.django_db
class TestSourcePages:
    def test_create_shows_the_key_once(self, admin_user: AbstractUser) -> None:
        client = Client()
        client.login(username=admin_user.get_username(), password=TEST_PASSWORD)
        response = client.post(reverse("source-list"), {"name": "Web app", "kind": "tracking_api"})
        key = response.context["write_key"]
        assert source_for_write_key(key) == Source.objects.get(name="Web app")
        assert key not in client.get(reverse("source-list")).content.decode()

    def test_duplicate_name_is_a_form_error(self, admin_user: AbstractUser) -> None:
        source_create(name="Web app")
        client = Client()
        client.login(username=admin_user.get_username(), password=TEST_PASSWORD)
        response = client.post(reverse("source-list"), {"name": "web APP", "kind": "tracking_api"})
        assert response.status_code == 400
        assert "already exists" in response.content.decode()
        assert Source.objects.count() == 1

    def test_rotate_from_the_ui(self, admin_user: AbstractUser) -> None:
        source, old = source_create(name="Web app")
        client = Client()
        client.login(username=admin_user.get_username(), password=TEST_PASSWORD)
        response = client.post(reverse("source-rotate", kwargs={"pk": source.pk}))
        assert response.status_code == 200
        assert source_for_write_key(old) is None
        assert source_for_write_key(response.context["write_key"]) == source

    def test_api_create_and_rotate(
        self, admin_user: AbstractUser, api_client_for: Callable[[AbstractUser], APIClient]
    ) -> None:
        client = api_client_for(admin_user)
        created = client.post("/api/v1/sources/", {"name": "Backend"}, format="json").json()
        assert source_for_write_key(created["write_key"]).name == "Backend"  # type: ignore[union-attr]
        rotated = client.post(f"/api/v1/sources/{created['id']}/rotate/").json()
        assert source_for_write_key(created["write_key"]) is None
        assert rotated["write_key"] != created["write_key"]
        assert "write_key" not in client.get(f"/api/v1/sources/{created['id']}/").json()

    def test_api_rejects_an_empty_name_with_a_message(
        self, admin_user: AbstractUser, api_client_for: Callable[[AbstractUser], APIClient]
    ) -> None:
        response = api_client_for(admin_user).post("/api/v1/sources/", {"name": ""}, format="json")
        assert response.status_code == 400
        assert response.json()["error"].startswith("name:")
        assert not Source.objects.exists()
