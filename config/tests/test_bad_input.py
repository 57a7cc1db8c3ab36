"""Bad input on the pages and APIs added for audiences, offers, trials and destinations answers 4xx (or the page
with a form error), never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from conftest import TEST_PASSWORD
from integrations.destinations.services import destination_create
from segments.services import segment_save
from trials.messaging.models import MessageTemplate

pytestmark = pytest.mark.django_db

GETS = [
    "/computed-traits/?page=zz",
    "/segments/{segment}/audience/?range=forever&kind=nope",
    "/trials/loop/?days=abc",
    "/trials/emails/{template}/?customer=abc",
    "/offers/reports/?days=-5",
    "/offers/sessions/?outcome=bogus",
    "/api/v1/computed-traits/?cursor=%%%",
    "/api/v1/segments/{segment}/history/?bucket=year&days=-1",
    "/api/v1/segments/{segment}/changes/?kind=sideways",
    "/api/v1/cancellation-reports/?days=abc",
    "/api/v1/destinations/{destination}/deliveries/?status=lost",
]
POSTS: list[tuple[str, Any]] = [
    ("/api/v1/computed-traits/", {"key": "", "kind": "count"}),
    ("/api/v1/computed-traits/", ["not", "an", "object"]),
    ("/api/v1/destinations/", {"name": "x", "kind": "webhook", "url": "ftp://x", "kinds": "audience_entered"}),
    ("/api/v1/custom-properties/", {"scope": "planet", "key": "1 bad", "value_type": "colour"}),
    ("/api/v1/segments/{segment}/live/", {"is_live": "maybe", "audience_key": "Not A Key"}),
]


@pytest.fixture
def ids(db: Any, settings: Any) -> dict[str, int]:
    """Real objects, so bad parameters reach the code that reads them instead of a 404 for a missing object."""
    settings.DESTINATIONS_ALLOW_PRIVATE_URLS = True
    segment = segment_save(name="Everyone", conditions={"type": "group", "operator": "and", "children": [
        {"type": "condition", "property": "customer.is_test", "operator": "is_false"}]})  # fmt: skip
    destination = destination_create(name="Hook", kind="webhook", url="http://127.0.0.1:9/", kinds=["trait_changed"])
    template = MessageTemplate.objects.order_by("pk").first()
    assert template is not None
    return {"segment": segment.pk, "destination": destination.pk, "template": template.pk}


@pytest.fixture
def admin_client(admin_user: Any) -> Client:
    client = Client()
    assert client.login(username=admin_user.username, password=TEST_PASSWORD)
    return client


@pytest.mark.parametrize("url", GETS)
def test_bad_query_parameters_never_give_a_500(admin_client: Client, ids: dict[str, int], url: str) -> None:
    assert admin_client.get(url.format(**ids)).status_code in (200, 400)


@pytest.mark.parametrize(("url", "body"), POSTS)
def test_bad_bodies_get_a_4xx(admin_client: Client, ids: dict[str, int], url: str, body: Any) -> None:
    response = admin_client.post(url.format(**ids), body, content_type="application/json")
    assert response.status_code == 400, response.content


def test_the_cancellation_session_api_refuses_bad_input_with_json(admin_client: Client) -> None:
    anonymous = Client()
    response = anonymous.post("/api/v1/cancellation-sessions/", "{not json", content_type="application/json")
    assert 400 <= response.status_code < 500
    assert response["Content-Type"].startswith("application/json")
