"""Source keys: write keys stored hashed, secret keys encrypted, each shown once; rotation retires the old write
key at once and the old secret key after the overlap; who may embed the hosted cancellation page."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from audiences.models import Source
from audiences.selectors import source_for_secret_key, source_for_write_key, source_secret_keys
from audiences.services import (
    SECRET_KEY_OVERLAP,
    frame_ancestors_clean,
    source_create,
    source_rotate_key,
    source_rotate_secret,
)
from config.models import AuditEntry
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


def _raw_secret_columns(source_id: int) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_key, previous_secret_key FROM audiences_source WHERE id = %s", [source_id])
        row = cursor.fetchone()
    assert row is not None
    return row[0], row[1]


@pytest.mark.django_db
class TestSecretKeys:
    def test_the_secret_is_recognisable_encrypted_at_rest_and_found_by_its_digest(self) -> None:
        source, write_key = source_create(name="Web")
        secret = source.secret_key
        assert secret.startswith("tlsk_") and len(secret) >= 48 and secret != write_key
        stored, previous = _raw_secret_columns(source.pk)
        assert secret not in stored and stored.startswith("gAAAAA") and previous == ""
        assert Source.objects.get(pk=source.pk).secret_key == secret
        assert source_for_secret_key(secret) == source
        assert source_for_secret_key(write_key) is None
        assert source_create(name="Mobile")[0].secret_key != secret

    def test_a_rotated_secret_keeps_working_for_the_overlap_only(self) -> None:
        source, _ = source_create(name="Web")
        old = source.secret_key
        new = source_rotate_secret(source=source)
        rotated_at = Source.objects.get(pk=source.pk).secret_rotated_at
        assert rotated_at is not None and new != old and new.startswith("tlsk_")

        assert source_for_secret_key(new) == source
        assert source_for_secret_key(old, now=rotated_at + SECRET_KEY_OVERLAP - timedelta(seconds=1)) == source
        assert source_for_secret_key(old, now=rotated_at + SECRET_KEY_OVERLAP) is None
        assert source_secret_keys(source.pk, now=rotated_at + timedelta(hours=1)) == [new, old]
        assert source_secret_keys(source.pk, now=rotated_at + SECRET_KEY_OVERLAP) == [new]
        assert source_rotate_secret(source=source) not in (old, new)
        assert source_for_secret_key(old) is None  # a second rotation keeps only the one before

    def test_the_admin_never_renders_the_secret(self, admin_user: AbstractUser) -> None:
        source, _ = source_create(name="Web")
        source_rotate_secret(source=source)
        client = Client()
        client.force_login(admin_user)  # type: ignore[arg-type]
        fresh = Source.objects.get(pk=source.pk)
        page = client.get(reverse("admin:audiences_source_change", args=[source.pk])).content.decode()
        assert fresh.secret_key_prefix in page
        assert fresh.secret_key not in page and fresh.previous_secret_key not in page
        assert fresh.secret_key_digest not in page

    def test_the_audit_log_records_only_that_the_secret_changed(self) -> None:
        source, _ = source_create(name="Web")
        source_rotate_secret(source=source)
        fresh = Source.objects.get(pk=source.pk)
        recorded = str(list(AuditEntry.objects.filter(model="audiences.Source").values_list("changes", flat=True)))
        assert "secret_key" in recorded
        for secret in (fresh.secret_key, fresh.previous_secret_key, fresh.secret_key_digest):
            assert secret not in recorded


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ([], []),
        (
            ["https://App.Example.com", "https://app.example.com/", " self ", "'self'"],
            ["https://app.example.com", "'self'"],
        ),
        (["https://app.example.com:8443"], ["https://app.example.com:8443"]),
    ],
)
def test_frame_ancestors_are_https_origins_or_self(given: list[str], kept: list[str]) -> None:
    assert frame_ancestors_clean(given) == kept


@pytest.mark.parametrize(
    "bad",
    [
        "http://app.example.com",
        "https://app.example.com/billing",
        "https://app.example.com?x=1",
        "https://*.example.com",
        "*",
        "'none'",
        "https://user@app.example.com",
        "https://app.example.com; script-src *",
        "https://app.example.com:99999",
        "app.example.com",
        "javascript:alert(1)",
    ],
)
def test_anything_else_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="not an https origin"):
        frame_ancestors_clean([bad])


@pytest.mark.django_db
class TestSecretKeyPagesAndApi:
    def test_create_shows_both_keys_once_and_how_to_sign(self, admin_user: AbstractUser) -> None:
        client = Client()
        client.login(username=admin_user.get_username(), password=TEST_PASSWORD)
        response = client.post(reverse("source-list"), {"name": "Web app", "kind": "tracking_api"})
        secret = response.context["secret_key"]
        source = Source.objects.get(name="Web app")
        assert source_for_secret_key(secret) == source
        page = response.content.decode()
        assert secret in page and response.context["write_key"] in page
        assert "auth_hash = hmac.new(" in page and "Authorization: Bearer" in page
        assert "/api/v1/in-app/" in page and "Trialloop-Auth-Hash" in page  # the same proof for in-app prompts
        assert "no-store" in response["Cache-Control"]
        listing = client.get(reverse("source-list")).content.decode()
        assert secret not in listing and source.secret_key_prefix in listing

    def test_rotate_the_secret_from_the_ui(self, admin_user: AbstractUser) -> None:
        source, write_key = source_create(name="Web app")
        old = source.secret_key
        client = Client()
        client.login(username=admin_user.get_username(), password=TEST_PASSWORD)
        response = client.post(reverse("source-rotate", kwargs={"pk": source.pk}), {"key": "secret"})
        new = response.context["secret_key"]
        assert response.status_code == 200 and new != old and new in response.content.decode()
        assert response.context["write_key"] == "" and write_key not in response.content.decode()
        assert source_for_secret_key(new) == source and source_for_secret_key(old) == source  # the overlap
        assert source_for_write_key(write_key) == source  # the write key is untouched

    def test_rotating_the_write_key_never_shows_the_secret(self, admin_user: AbstractUser) -> None:
        source, _ = source_create(name="Web app")
        client = Client()
        client.login(username=admin_user.get_username(), password=TEST_PASSWORD)
        response = client.post(reverse("source-rotate", kwargs={"pk": source.pk}))
        assert source.secret_key not in response.content.decode()

    def test_who_may_embed_the_cancel_page_is_set_on_the_sources_page(self, admin_user: AbstractUser) -> None:
        source, _ = source_create(name="Web app")
        client = Client()
        client.login(username=admin_user.get_username(), password=TEST_PASSWORD)
        url = reverse("source-list")
        field = f"s{source.pk}-origins"

        refused = client.post(url, {"action": "cancel_page", "source": source.pk, field: "http://app.example.com"})
        assert refused.status_code == 400
        assert "not an https origin" in refused.content.decode()
        assert Source.objects.get(pk=source.pk).cancel_page_frame_ancestors == []

        saved = client.post(url, {"action": "cancel_page", "source": source.pk, field: "https://app.example.com\nself"})
        assert saved.status_code == 302
        assert Source.objects.get(pk=source.pk).cancel_page_frame_ancestors == ["https://app.example.com", "'self'"]
        assert "https://app.example.com" in client.get(url).content.decode()

    def test_the_api_answers_each_key_once(
        self, admin_user: AbstractUser, api_client_for: Callable[[AbstractUser], APIClient]
    ) -> None:
        client = api_client_for(admin_user)
        created = client.post(
            "/api/v1/sources/",
            {"name": "Backend", "cancel_page_frame_ancestors": ["https://app.example.com"]},
            format="json",
        ).json()
        source = Source.objects.get(name="Backend")
        assert source_for_secret_key(created["secret_key"]) == source
        assert created["cancel_page_frame_ancestors"] == ["https://app.example.com"]
        shown = client.get(f"/api/v1/sources/{source.pk}/").json()
        assert "secret_key" not in shown and shown["secret_key_prefix"] == created["secret_key"][:10]

        write_rotated = client.post(f"/api/v1/sources/{source.pk}/rotate/").json()
        assert "secret_key" not in write_rotated and write_rotated["write_key"] != created["write_key"]
        secret_rotated = client.post(f"/api/v1/sources/{source.pk}/rotate/", {"key": "secret"}, format="json").json()
        assert "write_key" not in secret_rotated
        assert source_for_secret_key(secret_rotated["secret_key"]) == source
        assert source_for_secret_key(created["secret_key"]) == source  # within the overlap
        assert client.post(f"/api/v1/sources/{source.pk}/rotate/", {"key": "both"}, format="json").status_code == 400

    def test_the_api_refuses_a_bad_origin_with_a_message(
        self, admin_user: AbstractUser, api_client_for: Callable[[AbstractUser], APIClient]
    ) -> None:
        answer = api_client_for(admin_user).post(
            "/api/v1/sources/",
            {"name": "Backend", "cancel_page_frame_ancestors": ["https://*.example.com"]},
            format="json",
        )
        assert answer.status_code == 400
        assert "not an https origin" in answer.json()["error"]
        assert not Source.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_every_existing_source_its_own_secret() -> None:
    executor = MigrationExecutor(connection)
    before = [("audiences", "0008_erasure_redacted_rows")]
    after = [("audiences", "0009_source_secret_key_and_cancel_page_embedding")]
    executor.migrate(before)
    OldSource = executor.loader.project_state(before).apps.get_model("audiences", "Source")
    old_ids = [
        OldSource.objects.create(name=f"Old {n}", write_key_hash=f"{n}" * 64, write_key_prefix=f"{n}" * 8).pk
        for n in range(3)
    ]

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    sources = list(Source.objects.filter(pk__in=old_ids))
    secrets = {source.secret_key for source in sources}
    assert len(sources) == 3 and len(secrets) == 3
    for source in sources:
        assert source.secret_key.startswith("tlsk_") and source.secret_key_prefix == source.secret_key[:10]
        assert source_for_secret_key(source.secret_key) == source
        assert source.secret_key not in _raw_secret_columns(source.pk)[0]
        assert source.cancel_page_frame_ancestors == []
