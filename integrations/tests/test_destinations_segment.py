"""Segment-compatible forwarding: the calls Segment Engage would send, batched to /v1/batch with the write key —
tested against Trialloop's own tracking API on a live server, and against a recording receiver for batching."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from audiences.models import AnonymousId, Customer, Event
from audiences.services import source_create
from config.facts import Fact, FactKind
from integrations.destinations.emit import outbound_emit
from integrations.destinations.models import DestinationDelivery
from integrations.destinations.payloads import segment_batch_url, segment_calls
from integrations.destinations.services import destination_create, destination_delivery_replay
from integrations.tests.receiver import Receiver

AT = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
POWER_USERS = {"audience": {"id": 12, "key": "power_users", "name": "Power users"}}


@pytest.fixture(autouse=True)
def allow_local_receiver(settings: Any) -> None:
    settings.DESTINATIONS_ALLOW_PRIVATE_URLS = True


def audience(kind: str, customer: Customer, audience_id: int = 12) -> Fact:
    verb = "entered" if kind == FactKind.AUDIENCE_ENTERED else "exited"
    return Fact(kind, customer.pk, f"audience:{audience_id}:{verb}:{customer.pk}", AT, POWER_USERS)


class TestMapping:
    def test_audience_entered_is_an_identify_and_a_track_like_engage_sends(self) -> None:
        message = Fact(FactKind.AUDIENCE_ENTERED, 7, "audience:12:entered:7", AT, POWER_USERS)
        identify, track = segment_calls(message, {"userId": "usr_ada"})
        personas = {"computation_class": "audience", "computation_key": "power_users", "computation_id": "12"}
        assert identify == {
            "userId": "usr_ada",
            "timestamp": "2026-11-24T09:30:00Z",
            "context": {"library": {"name": "trialloop", "version": "1"}, "personas": personas},
            "type": "identify",
            "messageId": "audience:12:entered:7:identify",
            "traits": {"power_users": True},
        }
        assert track["type"] == "track"
        assert track["event"] == "Audience Entered"
        assert track["messageId"] == "audience:12:entered:7"
        assert track["properties"] == {"audience_key": "power_users", "audience_name": "Power users"}

    def test_exit_trait_change_and_billing_event(self) -> None:
        exited = segment_calls(Fact("audience_exited", 7, "k1", AT, POWER_USERS), {"anonymousId": "anon-1"})
        assert [(c["type"], c.get("event"), c.get("traits")) for c in exited] == [
            ("identify", None, {"power_users": False}),
            ("track", "Audience Exited", None),
        ]
        assert all(call["anonymousId"] == "anon-1" and "userId" not in call for call in exited)
        trait = {"trait": {"key": "projects_30d", "name": "Projects"}, "old": 3, "new": 4}
        [identify] = segment_calls(Fact("trait_changed", 7, "k2", AT, trait), {"userId": "u"})
        assert (identify["type"], identify["traits"], identify["messageId"]) == ("identify", {"projects_30d": 4}, "k2")
        billing = {"event": "Payment Failed", "properties": {"amount": 99.0, "currency": "usd"}}
        [track] = segment_calls(Fact("billing_event", 7, "k3", AT, billing), {"userId": "u"})
        assert (track["event"], track["properties"]) == ("Payment Failed", {"amount": 99.0, "currency": "usd"})

    def test_data_missing_the_audience_key_is_refused(self) -> None:
        with pytest.raises(ValueError, match=r"lacks audience\.key"):
            segment_calls(Fact("audience_entered", 7, "k", AT, {"audience": {"id": 1}}), {"userId": "u"})

    @pytest.mark.parametrize(
        ("url", "endpoint"),
        [
            ("https://api.segment.io", "https://api.segment.io/v1/batch"),
            ("https://api.segment.io/", "https://api.segment.io/v1/batch"),
            ("https://events.eu1.segmentapis.com/v1/batch", "https://events.eu1.segmentapis.com/v1/batch"),
        ],
    )
    def test_the_batch_endpoint_follows_from_the_base_url(self, url: str, endpoint: str) -> None:
        assert segment_batch_url(url) == endpoint


@pytest.mark.django_db(transaction=True)
def test_forwarding_into_our_own_tracking_api(live_url: str) -> None:
    """A Trialloop installation that keeps Segment: its results arrive in Segment — here, in Trialloop's own
    Segment-compatible API on a live server, authenticated by a source's write key."""
    source, write_key = source_create(name="Trialloop results")
    destination = destination_create(
        name="Segment",
        kind="segment",
        url=live_url,
        kinds=["audience_entered", "trait_changed", "billing_event"],
        write_key=write_key,
    )
    ada = Customer.objects.create(user_id="usr_ada", email="ada@acme.test")
    visitor = Customer.objects.create()
    AnonymousId.objects.create(anonymous_id="anon-visitor", customer=visitor)
    nobody = Customer.objects.create(email="nobody@acme.test")
    trait = {"trait": {"key": "projects_30d", "name": "Projects (30 days)"}, "old": 3, "new": 4}
    billing = {"event": "Trial Started", "properties": {"plan": "Team", "trial_days": 14}}

    created = outbound_emit(
        [
            audience(FactKind.AUDIENCE_ENTERED, ada),
            audience(FactKind.AUDIENCE_ENTERED, visitor),
            audience(FactKind.AUDIENCE_ENTERED, nobody),
            Fact(FactKind.TRAIT_CHANGED, ada.pk, f"trait:projects_30d:{ada.pk}:1", AT, trait),
            Fact(FactKind.BILLING_EVENT, ada.pk, "billing:evt_1:0", AT, billing),
        ]
    )  # outside a transaction: the flush runs at once, through the live server

    assert created == 5
    statuses = dict(DestinationDelivery.objects.values_list("idempotency_key", "status"))
    assert statuses.pop(f"audience:12:entered:{nobody.pk}") == "skipped"
    assert set(statuses.values()) == {"delivered"}
    stored = {event.message_id: event for event in Event.objects.filter(source=source)}
    assert set(stored) == {
        f"audience:12:entered:{ada.pk}",
        f"audience:12:entered:{ada.pk}:identify",
        f"audience:12:entered:{visitor.pk}",
        f"audience:12:entered:{visitor.pk}:identify",
        f"trait:projects_30d:{ada.pk}:1",
        "billing:evt_1:0",
    }
    entered = stored[f"audience:12:entered:{ada.pk}"]
    assert (entered.type, entered.name, entered.user_id, entered.customer_id) == (
        "track",
        "Audience Entered",
        "usr_ada",
        ada.pk,
    )
    assert entered.properties == {"audience_key": "power_users", "audience_name": "Power users"}
    identify = stored[f"audience:12:entered:{ada.pk}:identify"]
    assert (identify.type, identify.user_id, identify.properties) == ("identify", "usr_ada", {"power_users": True})
    assert stored[f"trait:projects_30d:{ada.pk}:1"].properties == {"projects_30d": 4}
    assert (stored["billing:evt_1:0"].name, stored["billing:evt_1:0"].properties) == (
        "Trial Started",
        billing["properties"],
    )
    from_visitor = stored[f"audience:12:entered:{visitor.pk}"]
    assert (from_visitor.anonymous_id, from_visitor.user_id, from_visitor.customer_id) == (
        "anon-visitor",
        "",
        visitor.pk,
    )
    assert entered.timestamp == AT
    assert nobody.pk not in {event.customer_id for event in stored.values()}
    skipped = DestinationDelivery.objects.get(status="skipped")
    assert skipped.last_error == "The customer has no user id or anonymous id to send as."

    # A replay carries the same messageIds: the receiving API recognises them and stores nothing twice.
    destination_delivery_replay(delivery=DestinationDelivery.objects.get(idempotency_key="billing:evt_1:0"))
    assert Event.objects.filter(source=source).count() == 6
    assert DestinationDelivery.objects.get(idempotency_key="billing:evt_1:0").status == "delivered"
    assert destination.deliveries.filter(status="delivered").count() == 4


@pytest.mark.django_db
def test_a_wrong_write_key_fails_the_batch_for_good(live_url: str) -> None:
    destination_create(name="Segment", kind="segment", url=live_url, kinds=["billing_event"], write_key="wrong")
    ada = Customer.objects.create(user_id="usr_ada")
    outbound_emit([Fact("billing_event", ada.pk, "billing:evt_1:0", AT, {"event": "Trial Started"})])
    delivery = DestinationDelivery.objects.get()
    assert (delivery.status, delivery.last_status_code) == ("failed", 401)
    assert "Invalid write key" in delivery.last_error


@pytest.mark.django_db
def test_calls_are_batched_by_count_with_basic_auth(
    receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    destination_create(
        name="Segment", kind="segment", url=receiver.url, kinds=["audience_entered"], write_key="wk_results"
    )
    people = [Customer.objects.create(user_id=f"usr_{n}") for n in range(120)]
    with django_capture_on_commit_callbacks(execute=True):
        assert outbound_emit([audience(FactKind.AUDIENCE_ENTERED, person) for person in people]) == 120

    assert [request.path for request in receiver.requests] == ["/hooks/trialloop/v1/batch"] * 3
    sizes = [len(request.json()["batch"]) for request in receiver.requests]
    assert sizes == [100, 100, 40]  # two calls per audience message, never split across batches
    expected = "Basic " + base64.b64encode(b"wk_results:").decode()
    assert {request.headers["Authorization"] for request in receiver.requests} == {expected}
    calls = [call for request in receiver.requests for call in request.json()["batch"]]
    assert [call["userId"] for call in calls[:4]] == ["usr_0", "usr_0", "usr_1", "usr_1"]
    assert all(call["timestamp"] == "2026-11-24T09:30:00Z" and "sentAt" not in call for call in calls)
    assert DestinationDelivery.objects.filter(status="delivered").count() == 120


@pytest.mark.django_db
def test_batches_stay_under_500_kb_and_an_oversized_call_fails(
    receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    destination_create(name="Segment", kind="segment", url=receiver.url, kinds=["billing_event"], write_key="wk")
    ada = Customer.objects.create(user_id="usr_ada")
    big = {"event": "Invoice Finalized", "properties": {"notes": "x" * 20_000}}
    huge = {"event": "Invoice Finalized", "properties": {"notes": "x" * 40_000}}
    messages = [Fact("billing_event", ada.pk, f"billing:evt_{n}:0", AT, big) for n in range(60)]
    messages.append(Fact("billing_event", ada.pk, "billing:evt_huge:0", AT, huge))
    with django_capture_on_commit_callbacks(execute=True):
        outbound_emit(messages)

    assert all(len(request.body) <= 500 * 1024 for request in receiver.requests)
    assert sum(len(request.json()["batch"]) for request in receiver.requests) == 60
    assert len(receiver.requests) == 3
    oversized = DestinationDelivery.objects.get(idempotency_key="billing:evt_huge:0")
    assert (oversized.status, oversized.last_error) == ("failed", "A call is larger than 32 KB.")


@pytest.mark.django_db
def test_a_failed_batch_is_retried_as_a_whole(receiver: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    destination_create(name="Segment", kind="segment", url=receiver.url, kinds=["audience_entered"], write_key="wk")
    people = [Customer.objects.create(user_id=f"usr_{n}") for n in range(3)]
    receiver.answer(503)
    with django_capture_on_commit_callbacks(execute=True):
        outbound_emit([audience(FactKind.AUDIENCE_ENTERED, person) for person in people])
    assert set(DestinationDelivery.objects.values_list("status", "attempts", "last_status_code")) == {
        ("pending", 1, 503)
    }
