"""Destinations through the staff UI and the REST API: create and edit with clear errors for bad input, health
on the list, the delivery log with replay, pause/resume and rotation, and who may do what."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from audiences.models import Customer
from config.facts import Fact
from config.models import AuditEntry
from config.roles import Role
from conftest import TEST_PASSWORD
from integrations.destinations.emit import outbound_emit
from integrations.destinations.models import Destination, DestinationDelivery
from integrations.destinations.services import destination_create, destination_pause
from integrations.tests.receiver import Receiver


def signed_in(user: AbstractUser) -> Client:
    client = Client()
    assert client.login(username=user.get_username(), password=TEST_PASSWORD)
    return client


@pytest.fixture(autouse=True)
def allow_local_receiver(settings: Any) -> None:
    settings.DESTINATIONS_ALLOW_PRIVATE_URLS = True


@pytest.fixture
def growth(make_user: Callable[..., AbstractUser]) -> Client:
    return signed_in(make_user(Role.GROWTH))


@pytest.fixture
def cs(make_user: Callable[..., AbstractUser]) -> Client:
    return signed_in(make_user(Role.CS))


@pytest.fixture
def hook(receiver: Receiver) -> Destination:
    return destination_create(name="CRM", kind="webhook", url=receiver.url, kinds=["audience_entered"])


def deliveries(destination: Destination, capture: Any, statuses: list[int], receiver: Receiver) -> list[Any]:
    """One delivery per status code the receiver answers with."""
    receiver.answer(*statuses)
    ada = Customer.objects.create(user_id="usr_ada", email="ada@acme.test", name="Ada")
    with capture(execute=True):
        outbound_emit(
            [
                Fact("audience_entered", ada.pk, f"audience:{n}:entered:{ada.pk}", timezone.now(), {"audience": {}})
                for n in range(len(statuses))
            ]
        )
    return list(DestinationDelivery.objects.order_by("id"))


FORM = {
    "name": "CRM",
    "kind": "webhook",
    "kinds": ["audience_entered", "audience_exited"],
    "consent_category": "destinations",
}


@pytest.mark.django_db
class TestPages:
    def test_growth_creates_a_webhook_and_sees_its_secret(self, growth: Client, receiver: Receiver) -> None:
        response = growth.post(reverse("destination-create"), {**FORM, "url": receiver.url})
        destination = Destination.objects.get()
        assert response.headers["Location"] == reverse("destination-detail", kwargs={"pk": destination.pk})
        assert destination.kinds == ["audience_entered", "audience_exited"]
        page = growth.get(response.headers["Location"]).content.decode()
        assert destination.signing_secret in page
        assert "webhook-signature" in page and "Standard Webhooks" in page
        again = growth.get(response.headers["Location"]).content.decode()
        assert destination.signing_secret not in again, "the secret is shown once"
        assert f"{destination.signing_secret[:10]}…" in again

        growth.post(response.headers["Location"], {"action": "rotate"})
        destination.refresh_from_db()
        after_rotation = growth.get(response.headers["Location"]).content.decode()
        assert destination.signing_secret in after_rotation
        assert destination.signing_secret not in growth.get(response.headers["Location"]).content.decode()

    @pytest.mark.parametrize(
        ("change", "field", "message"),
        [
            ({"url": "ftp://93.184.216.34/x"}, "url", "Only http:// and https:// URLs are allowed"),
            ({"url": "not a url"}, "url", "Enter a valid URL"),
            ({"kinds": []}, "kinds", "This field is required"),
            ({"kinds": ["coupon_used"]}, "kinds", "Select a valid choice"),
            ({"consent_category": "Not OK!"}, "consent_category", "lower-case letters"),
            ({"kind": "segment"}, "write_key", "needs the write key"),
            ({"kind": "segment", "write_key": "wk", "kinds": ["alert_created"]}, "kinds", "not Alert created"),
        ],
    )
    def test_bad_input_comes_back_as_a_field_error(
        self, growth: Client, receiver: Receiver, change: dict[str, Any], field: str, message: str
    ) -> None:
        response = growth.post(reverse("destination-create"), {**FORM, "url": receiver.url, **change})
        assert response.status_code == 400
        assert message in " ".join(response.context["form"].errors[field])
        assert message.replace("“", "&ldquo;") in response.content.decode() or message in response.content.decode()
        assert not Destination.objects.exists()

    def test_a_private_url_is_refused_unless_the_setting_allows_it(self, growth: Client, settings: Any) -> None:
        settings.DESTINATIONS_ALLOW_PRIVATE_URLS = False
        response = growth.post(reverse("destination-create"), {**FORM, "url": "http://192.168.1.10/hooks"})
        assert response.status_code == 400
        assert "loopback, private, link-local or reserved" in response.context["form"].errors["url"][0]

    def test_editing_keeps_the_kind_and_the_stored_write_key(self, growth: Client, receiver: Receiver) -> None:
        segment = destination_create(
            name="Segment", kind="segment", url=receiver.url, kinds=["billing_event"], write_key="wk_secret"
        )
        response = growth.post(
            reverse("destination-edit", kwargs={"pk": segment.pk}),
            {**FORM, "name": "Segment EU", "kind": "webhook", "url": receiver.url, "kinds": ["trait_changed"]},
        )
        assert response.status_code == 302
        segment.refresh_from_db()
        assert (segment.name, segment.kind, segment.write_key, segment.kinds) == (
            "Segment EU",
            "segment",
            "wk_secret",
            ["trait_changed"],
        )
        assert "wk_secret" not in growth.get(reverse("destination-edit", kwargs={"pk": segment.pk})).content.decode()

    def test_the_list_shows_health(
        self, growth: Client, hook: Destination, receiver: Receiver, django_capture_on_commit_callbacks: Any
    ) -> None:
        deliveries(hook, django_capture_on_commit_callbacks, [200, 200, 200, 400], receiver)
        page = growth.get(reverse("destination-list")).content.decode()
        assert "CRM" in page
        assert "75 %" in page  # three of four tries delivered
        assert f'href="/integrations/destinations/{hook.pk}/?status=failed">1</a>' in page

    def test_the_log_filters_by_status_and_replays(
        self, growth: Client, hook: Destination, receiver: Receiver, django_capture_on_commit_callbacks: Any
    ) -> None:
        _, failed = deliveries(hook, django_capture_on_commit_callbacks, [200, 400], receiver)
        detail = reverse("destination-detail", kwargs={"pk": hook.pk})
        failures = growth.get(detail, {"status": "failed"})
        assert [d.pk for d in failures.context["page"].items] == [failed.pk]
        assert "scripted failure" in failures.content.decode()

        with django_capture_on_commit_callbacks(execute=True):
            response = growth.post(detail, {"action": "replay", "delivery": failed.pk})
        assert response.status_code == 302
        failed.refresh_from_db()
        assert failed.status == "delivered"
        assert receiver.requests[-1].headers["webhook-id"] == failed.idempotency_key

    def test_pause_resume_and_rotate(
        self, growth: Client, hook: Destination, receiver: Receiver, django_capture_on_commit_callbacks: Any
    ) -> None:
        detail = reverse("destination-detail", kwargs={"pk": hook.pk})
        growth.post(detail, {"action": "pause"})
        hook.refresh_from_db()
        assert hook.is_paused
        ada = Customer.objects.create(user_id="usr_ada")
        with django_capture_on_commit_callbacks(execute=True):
            outbound_emit([Fact("audience_entered", ada.pk, "a:1", timezone.now(), {"audience": {}})])
        assert receiver.requests == []
        with django_capture_on_commit_callbacks(execute=True):
            growth.post(detail, {"action": "resume"})
        assert len(receiver.requests) == 1
        old = hook.signing_secret
        growth.post(detail, {"action": "rotate"})
        hook.refresh_from_db()
        assert hook.signing_secret != old and hook.previous_signing_secret == old
        assert growth.post(detail, {"action": "explode"}).status_code == 400
        assert growth.post(detail, {"action": "replay", "delivery": "x"}).status_code == 400

    def test_cs_reads_but_changes_nothing_and_never_sees_the_secret(self, cs: Client, hook: Destination) -> None:
        detail = reverse("destination-detail", kwargs={"pk": hook.pk})
        page = cs.get(detail)
        assert page.status_code == 200
        assert hook.signing_secret not in page.content.decode()
        assert cs.get(reverse("destination-list")).status_code == 200
        assert cs.get(reverse("destination-create")).status_code == 403
        assert cs.get(reverse("destination-edit", kwargs={"pk": hook.pk})).status_code == 403
        assert cs.post(detail, {"action": "pause"}).status_code == 403
        hook.refresh_from_db()
        assert not hook.is_paused


@pytest.mark.django_db
class TestApi:
    @pytest.fixture
    def api(
        self, make_user: Callable[..., AbstractUser], api_client_for: Callable[[AbstractUser], APIClient]
    ) -> APIClient:
        return api_client_for(make_user(Role.GROWTH))

    def test_create_list_with_health_and_update(self, api: APIClient, receiver: Receiver) -> None:
        created = api.post(
            "/api/v1/destinations/",
            {"name": "CRM", "kind": "webhook", "url": receiver.url, "kinds": ["audience_entered"]},
            format="json",
        )
        assert created.status_code == 201, created.json()
        body = created.json()
        assert body["signing_secret"].startswith("whsec_")
        assert body["consent_category"] == "destinations"
        assert body["health"] == {
            "pending": 0,
            "failed": 0,
            "attempted_recently": 0,
            "delivered_recently": 0,
            "success_rate": None,
            "last_success_at": None,
            "last_failure_at": None,
        }
        listed = api.get("/api/v1/destinations/").json()
        assert [item["name"] for item in listed["results"]] == ["CRM"]
        patched = api.patch(f"/api/v1/destinations/{body['id']}/", {"kinds": ["trait_changed"]}, format="json")
        assert patched.json()["kinds"] == ["trait_changed"]

    @pytest.mark.parametrize(
        ("payload", "field", "message"),
        [
            ({"url": "ftp://93.184.216.34/"}, "url", "Only http:// and https://"),
            ({"url": "http://10.0.0.5/"}, "url", "loopback, private"),
            ({"kinds": []}, "kinds", "This list may not be empty"),
            ({"kinds": ["coupon_used"]}, "kinds", "Unknown kinds: coupon_used."),
            ({"kind": "segment"}, "write_key", "needs the write key"),
            ({"kind": "segment", "write_key": "wk", "kinds": ["offer_accepted"]}, "kinds", "not Offer accepted"),
            ({"consent_category": "Bad Category"}, "consent_category", "lower-case letters"),
        ],
    )
    def test_bad_input_is_a_400_naming_the_field(
        self, api: APIClient, settings: Any, payload: dict[str, Any], field: str, message: str
    ) -> None:
        settings.DESTINATIONS_ALLOW_PRIVATE_URLS = False
        base = {"name": "CRM", "kind": "webhook", "url": "https://93.184.216.34/hooks", "kinds": ["audience_entered"]}
        response = api.post("/api/v1/destinations/", {**base, **payload}, format="json")
        assert response.status_code == 400
        assert message in " ".join(map(str, response.json()["details"][field]))
        assert response.json()["error"].startswith(f"{field}:")
        assert not Destination.objects.exists()

    def test_the_kind_cannot_change(self, api: APIClient, hook: Destination) -> None:
        response = api.patch(f"/api/v1/destinations/{hook.pk}/", {"kind": "segment"}, format="json")
        assert response.status_code == 400
        assert "cannot change" in response.json()["error"]

    def test_deliveries_filter_and_replay(
        self, api: APIClient, hook: Destination, receiver: Receiver, django_capture_on_commit_callbacks: Any
    ) -> None:
        ok, failed = deliveries(hook, django_capture_on_commit_callbacks, [200, 404], receiver)
        log = api.get(f"/api/v1/destinations/{hook.pk}/deliveries/", {"status": "failed"}).json()
        assert [item["id"] for item in log["results"]] == [failed.pk]
        assert log["results"][0]["last_status_code"] == 404
        assert api.get(f"/api/v1/destinations/{hook.pk}/deliveries/", {"status": "lost"}).status_code == 400

        with django_capture_on_commit_callbacks(execute=True):
            replayed = api.post(f"/api/v1/destinations/{hook.pk}/deliveries/{failed.pk}/replay/")
        assert replayed.status_code == 202
        failed.refresh_from_db()
        assert failed.status == "delivered"

        destination_pause(destination=hook)
        with django_capture_on_commit_callbacks(execute=True):
            api.post(f"/api/v1/destinations/{hook.pk}/deliveries/{ok.pk}/replay/")
        again = api.post(f"/api/v1/destinations/{hook.pk}/deliveries/{ok.pk}/replay/")
        assert again.status_code == 400
        assert "this one is pending" in again.json()["error"]

    def test_pause_resume_and_rotate(self, api: APIClient, hook: Destination) -> None:
        AuditEntry.objects.all().delete()
        assert api.post(f"/api/v1/destinations/{hook.pk}/pause/").json()["is_paused"] is True
        assert api.post(f"/api/v1/destinations/{hook.pk}/resume/").json()["is_paused"] is False
        audited = AuditEntry.objects.filter(model="integrations.Destination").order_by("pk")
        assert [(entry.changes, entry.via) for entry in audited] == [
            ({"is_paused": [False, True]}, "api"),
            ({"is_paused": [True, False]}, "api"),
        ]
        rotated = api.post(f"/api/v1/destinations/{hook.pk}/rotate-secret/").json()
        assert rotated["signing_secret"] != hook.signing_secret
        hook.refresh_from_db()
        assert rotated["signing_secret"] == hook.signing_secret
        assert "signing_secret" not in api.get(f"/api/v1/destinations/{hook.pk}/").json(), "returned once"

    def test_cs_reads_without_the_secret_and_writes_nothing(
        self,
        make_user: Callable[..., AbstractUser],
        api_client_for: Callable[[AbstractUser], APIClient],
        hook: Destination,
    ) -> None:
        api = api_client_for(make_user(Role.CS))
        detail = api.get(f"/api/v1/destinations/{hook.pk}/").json()
        assert detail["name"] == "CRM" and "signing_secret" not in detail
        assert api.get(f"/api/v1/destinations/{hook.pk}/deliveries/").status_code == 200
        assert api.post(f"/api/v1/destinations/{hook.pk}/pause/").status_code == 403
        assert api.post("/api/v1/destinations/", {"name": "x"}, format="json").status_code == 403
        assert api.delete(f"/api/v1/destinations/{hook.pk}/").status_code == 403
        rep = api_client_for(make_user(Role.SALES_REP))
        assert rep.get("/api/v1/destinations/").status_code == 403

    def test_the_schema_describes_the_endpoints(self, api: APIClient) -> None:
        schema = api.get("/api/schema/", {"format": "json"}).json()
        assert "/api/v1/destinations/{id}/deliveries/{delivery_pk}/replay/" in schema["paths"]
        assert "/api/v1/destinations/{id}/rotate-secret/" in schema["paths"]
