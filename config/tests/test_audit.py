"""The audit log: configuration changes from the API, the UI and the system are recorded with who, when, the
door and the diff; secrets are hidden; machine bookkeeping is not logged; only admins read it; nobody edits it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser, Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from config.audit import HIDDEN
from config.models import AuditEntry
from config.roles import Role
from integrations.destinations.services import destination_create, destination_rotate_secret
from segments.models import Segment

HIGH_MRR = {"type": "condition", "property": "subscriber.mrr", "operator": "gte", "value": 100}
TREE = {"type": "group", "operator": "and", "children": [HIGH_MRR]}


@pytest.fixture(autouse=True)
def receivers_on_loopback(settings: Any) -> None:
    settings.DESTINATIONS_ALLOW_PRIVATE_URLS = True


def _entries(model: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(model=model).order_by("pk"))


@pytest.mark.django_db
class TestRecording:
    def test_an_api_change_records_the_token_user_the_door_and_the_diff(
        self, make_user: Callable[..., AbstractUser], api_client_for: Callable[..., Any]
    ) -> None:
        growth = make_user(Role.GROWTH, "gwen")
        api = api_client_for(growth)
        created = api.post("/api/v1/segments/", {"name": "High MRR", "conditions": HIGH_MRR}, format="json")
        assert created.status_code == 201, created.content
        segment_id = created.json()["id"]

        renamed = api.patch(f"/api/v1/segments/{segment_id}/", {"name": "Big spenders"}, format="json")
        assert renamed.status_code == 200, renamed.content

        first, second = _entries("segments.Segment")[:2]
        assert (first.action, first.actor, first.actor_name, first.via) == ("created", growth, "gwen", "api")
        assert first.changes["name"] == [None, "High MRR"]
        assert (second.action, second.object_id) == ("changed", str(segment_id))
        assert second.changes["name"] == ["High MRR", "Big spenders"]
        assert "updated_at" not in second.changes

    def test_changes_outside_a_request_are_the_systems(self) -> None:
        segment = Segment.objects.create(name="Made by a command", conditions=TREE)
        segment.delete()

        created, deleted = _entries("segments.Segment")
        assert (created.via, created.actor_name, created.actor) == ("system", "", None)
        assert deleted.action == "deleted"
        assert deleted.changes["name"] == ["Made by a command", None]

    def test_bookkeeping_saves_by_jobs_are_not_logged(self) -> None:
        segment = Segment.objects.create(name="Counted", conditions=TREE)
        segment.member_count = 42
        segment.last_evaluated_at = timezone.now()
        segment.save()

        assert [entry.action for entry in _entries("segments.Segment")] == ["created"]

    def test_secrets_show_only_that_they_changed(self) -> None:
        destination = destination_create(
            name="CRM", kind="webhook", url="http://127.0.0.1:9/hook", kinds=["alert_created"]
        )
        destination_rotate_secret(destination=destination)

        created, rotated = _entries("integrations.Destination")[:2]
        assert created.changes["signing_secret"] == [None, HIDDEN]
        assert rotated.changes["signing_secret"] == [HIDDEN, HIDDEN]
        assert rotated.changes["previous_signing_secret"] == [None, HIDDEN]
        recorded = str(list(AuditEntry.objects.values_list("changes", flat=True)))
        destination.refresh_from_db()
        assert destination.signing_secret not in recorded
        assert destination.previous_signing_secret not in recorded

    def test_a_users_roles_are_recorded_before_and_after(self, make_user: Callable[..., AbstractUser]) -> None:
        user = make_user(Role.SALES_REP, "rita")
        user.groups.add(Group.objects.get(name=Role.GROWTH))
        user.groups.remove(Group.objects.get(name=Role.SALES_REP))

        roles = [entry.changes["roles"] for entry in _entries("auth.User") if "roles" in entry.changes]
        assert roles == [
            [[], ["Sales rep"]],
            [["Sales rep"], ["Growth", "Sales rep"]],
            [["Growth", "Sales rep"], ["Growth"]],
        ]
        password_changes = [entry.changes.get("password") for entry in _entries("auth.User")]
        assert [None, HIDDEN] in password_changes


@pytest.mark.django_db
class TestThePage:
    def test_admins_read_and_filter_others_are_refused(
        self, admin_user: AbstractUser, make_user: Callable[..., AbstractUser]
    ) -> None:
        Segment.objects.create(name="Trialists", conditions=TREE)
        destination_create(name="CRM", kind="webhook", url="http://127.0.0.1:9/hook", kinds=["alert_created"])
        growth = Client()
        growth.force_login(make_user(Role.GROWTH))  # type: ignore[arg-type]
        assert growth.get(reverse("audit-log")).status_code == 403

        client = Client()
        client.force_login(admin_user)  # type: ignore[arg-type]
        everything = client.get(reverse("audit-log")).content.decode()
        assert "Trialists" in everything and "CRM" in everything

        only_segments = client.get(reverse("audit-log"), {"model": "segments.Segment"}).content.decode()
        assert "Trialists" in only_segments and "127.0.0.1:9" not in only_segments

    def test_bad_filters_are_form_errors(self, admin_user: AbstractUser) -> None:
        client = Client()
        client.force_login(admin_user)  # type: ignore[arg-type]
        response = client.get(reverse("audit-log"), {"since": "yesterday", "model": "nope.Nope"})
        assert response.status_code == 400
        body = response.content.decode()
        assert "Enter a valid date." in body
        assert "Select a valid choice." in body
        far = client.get(reverse("audit-log"), {"since": "2026-01-01", "until": "9999-12-31"})
        assert far.status_code == 400  # a form error, not an OverflowError on the day after

    def test_the_admin_offers_no_way_to_edit(self, admin_user: AbstractUser) -> None:
        Segment.objects.create(name="Trialists", conditions=TREE)
        entry = AuditEntry.objects.get(model="segments.Segment")
        client = Client()
        client.force_login(admin_user)  # type: ignore[arg-type]
        change_url = reverse("admin:project_auditentry_change", args=[entry.pk])
        assert client.post(change_url, {"object_repr": "forged"}).status_code == 403
        delete_url = reverse("admin:project_auditentry_delete", args=[entry.pk])
        assert client.post(delete_url, {"post": "yes"}).status_code == 403
        entry.refresh_from_db()
        assert entry.object_repr == "Trialists"


@pytest.mark.django_db
def test_an_api_token_is_never_named_by_its_key(make_user: Callable[..., AbstractUser]) -> None:
    from rest_framework.authtoken.models import Token

    user = make_user(Role.GROWTH, "tina")
    token = Token.objects.create(user_id=user.pk)
    key = token.key
    token.delete()
    entries = _entries("authtoken.Token")
    assert [entry.action for entry in entries] == ["created", "deleted"]
    for entry in entries:
        assert key not in f"{entry.object_id} {entry.object_repr} {entry.changes}"
        assert (entry.object_id, entry.object_repr) == (str(user.pk), f"Token of user {user.pk}")
