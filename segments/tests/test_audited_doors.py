"""Every door that changes a segment or a computed trait — the pages, the staff API — goes through one service,
and the audit log records the change with the door it came through (config.audit hangs off model signals, which a
QuerySet.update() would skip)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from config.models import AuditEntry
from config.roles import Role
from segments import services
from segments.models import Segment
from segments.services import segment_draft_save, segment_save

HIGH_MRR = {"type": "condition", "property": "subscriber.mrr", "operator": "gte", "value": 100}
LOW_MRR = {"type": "condition", "property": "subscriber.mrr", "operator": "gte", "value": 10}


@pytest.fixture
def growth(make_user: Callable[..., AbstractUser]) -> AbstractUser:
    return make_user(Role.GROWTH, "gwen")


@pytest.fixture
def drafted(growth: AbstractUser) -> Segment:
    segment = segment_save(name="High MRR", conditions=HIGH_MRR, owner=growth)
    return segment_draft_save(segment=segment, conditions=LOW_MRR, author=growth)


def _draft_changes(segment: Segment) -> list[AuditEntry]:
    entries = AuditEntry.objects.filter(model="segments.Segment", object_id=str(segment.pk)).order_by("pk")
    return [entry for entry in entries if "draft_conditions" in entry.changes]


@pytest.mark.django_db
class TestDraftDiscard:
    def test_discarding_on_the_page_is_audited(self, drafted: Segment, growth: AbstractUser) -> None:
        client = Client()
        client.force_login(growth)  # type: ignore[arg-type]
        response = client.post(reverse("segment-detail", kwargs={"pk": drafted.pk}), {"action": "discard"})
        assert response.status_code == 302
        drafted.refresh_from_db()
        assert drafted.draft_conditions is None
        discarded = _draft_changes(drafted)[-1]
        assert discarded.changes["draft_conditions"][1] is None
        assert (discarded.via, discarded.actor_name) == ("ui", "gwen")

    def test_discarding_through_the_api_is_audited(
        self, drafted: Segment, growth: AbstractUser, api_client_for: Callable[[AbstractUser], APIClient]
    ) -> None:
        response = api_client_for(growth).delete(f"/api/v1/segments/{drafted.pk}/draft/")
        assert response.status_code == 204
        discarded = _draft_changes(drafted)[-1]
        assert discarded.changes["draft_conditions"][1] is None
        assert (discarded.via, discarded.actor_name) == ("api", "gwen")

    def test_publishing_records_the_new_conditions_and_the_cleared_draft(
        self, drafted: Segment, growth: AbstractUser, api_client_for: Callable[[AbstractUser], APIClient]
    ) -> None:
        assert api_client_for(growth).post(f"/api/v1/segments/{drafted.pk}/publish/").status_code == 200
        entries = AuditEntry.objects.filter(model="segments.Segment", object_id=str(drafted.pk)).order_by("pk")
        assert any("conditions" in entry.changes for entry in entries)
        assert _draft_changes(drafted)[-1].changes["draft_conditions"][1] is None


@pytest.mark.django_db
def test_deleting_through_the_api_goes_through_the_service_and_is_audited(
    growth: AbstractUser, api_client_for: Callable[[AbstractUser], APIClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    segment = segment_save(name="Doomed", conditions=HIGH_MRR, owner=growth)
    calls: list[int] = []
    real = services.segment_delete

    def recorded(*, segment: Segment) -> Any:
        calls.append(segment.pk)
        return real(segment=segment)

    monkeypatch.setattr(services, "segment_delete", recorded)
    segment_id = segment.pk
    assert api_client_for(growth).delete(f"/api/v1/segments/{segment_id}/").status_code == 204
    assert calls == [segment_id]
    assert not Segment.objects.filter(pk=segment_id).exists()
    deleted = AuditEntry.objects.get(model="segments.Segment", object_id=str(segment_id), action="deleted")
    assert (deleted.via, deleted.actor_name) == ("api", "gwen")
