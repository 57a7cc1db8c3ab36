"""Every accepted offer and every session outcome goes on the customer's timeline (Trialloop's internal source,
one event per session step whatever the retries) and acceptances go to destinations (`offer_accepted`, one
delivery per session)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from audiences.models import Event
from audiences.services import internal_source
from integrations.destinations.models import Destination, DestinationDelivery
from offers import outcomes, sessions
from offers.models import CancellationSession
from offers.tests.conftest import post, start, stripe_subscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def webhook(db: Any) -> Destination:
    return Destination.objects.create(
        name="CRM", kind=Destination.Kind.WEBHOOK, url="https://hooks.example.test/trialloop", kinds=["offer_accepted"]
    )


def timeline(customer: Any) -> list[Event]:
    return list(Event.objects.filter(customer=customer, source=internal_source()).order_by("pk"))


def test_an_accepted_offer_goes_on_the_timeline_and_to_destinations_once(
    fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, product_api, webhook
):
    fake.add(stripe_subscription())
    offer = make_offer("trial_extension", "Two more weeks", days=14)
    make_rule(offer)
    session = start(product_api)
    post(product_api, session["token"], "reason", {"reason_id": reasons["price"].pk})

    post(product_api, session["token"], "accept")
    post(product_api, session["token"], "accept")  # a retried call changes nothing

    accepted, completed = timeline(bob)
    assert (accepted.name, accepted.message_id) == ("Offer Accepted", f"offers:{session['token']}:accept")
    assert (completed.name, completed.message_id) == (
        "Cancellation Session Completed",
        f"offers:{session['token']}:completed",
    )
    assert completed.properties == {
        "session_token": session["token"],
        "session_kind": "cancellation",
        "outcome": "saved",
        "reason_id": reasons["price"].pk,
        "reason": "Too expensive",
        "stripe_feedback": "too_expensive",
        "offer_id": offer.pk,
        "offer_name": "Two more weeks",
        "offer_kind": "trial_extension",
        "offer_accepted": True,
        "mrr": 49.0,
        "is_test": False,
    }
    (delivery,) = DestinationDelivery.objects.filter(destination=webhook)
    assert delivery.kind == "offer_accepted"
    assert delivery.idempotency_key == f"offer_accepted:{session['token']}"
    assert delivery.payload["data"]["offer"] == {
        "id": offer.pk,
        "name": "Two more weeks",
        "kind": "trial_extension",
        "parameters": {"days": 14},
    }
    assert delivery.payload["data"]["session"]["outcome"] == "saved"
    assert delivery.payload["customer"]["user_id"] == "usr_bob"


def test_a_cancellation_goes_on_the_timeline_but_not_to_offer_destinations(
    fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, product_api, webhook
):
    fake.add(stripe_subscription())
    make_rule(make_offer("discount", "20% off", percent_off=20, duration="once"))
    session = start(product_api)
    post(product_api, session["token"], "reason", {"reason_id": reasons["unused"].pk, "feedback": "meh"})

    post(product_api, session["token"], "confirm-cancel")
    post(product_api, session["token"], "confirm-cancel")

    (completed,) = timeline(bob)
    assert completed.name == "Cancellation Session Completed"
    assert completed.properties["outcome"] == "canceled"
    assert completed.properties["offer_name"] == "20% off"  # the offer that was declined
    assert completed.properties["offer_accepted"] is False
    assert completed.properties["reason"] == "Not using it"
    assert not DestinationDelivery.objects.exists()


def test_a_failed_stripe_step_tells_nothing(
    fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, product_api
):
    # sub_bob is not in the fake: the update answers 404 and the session stays open.
    make_rule(make_offer("trial_extension", "A week", days=7))
    session = start(product_api)
    post(product_api, session["token"], "reason", {"reason_id": reasons["price"].pk})

    post(product_api, session["token"], "accept", expect=502)

    assert timeline(bob) == []


def test_expired_sessions_are_told_once(bob, flow, reasons):
    now = timezone.now()
    session, _ = sessions.session_start(source=None, user_id="usr_bob", now=now - timedelta(hours=25))
    CancellationSession.objects.filter(pk=session.pk).update(created_at=now - timedelta(hours=25))
    session.refresh_from_db()

    assert sessions.sessions_expire(now=now) == 1
    assert sessions.sessions_expire(now=now) == 0

    (completed,) = timeline(bob)
    assert completed.message_id == f"offers:{session.token}:completed"
    assert completed.properties["outcome"] == "deflected"
    assert CancellationSession.objects.get().outcome_at == session.created_at + sessions.SESSION_LIFETIME


def test_a_test_session_goes_on_the_timeline_but_not_to_destinations(
    tess, flow, reasons, make_offer, make_rule, webhook
):
    make_rule(make_offer("trial_extension", "A week", days=7))
    session, _ = sessions.session_start(source=None, user_id="usr_tess")
    session = sessions.session_answer_reason(session=session, reason_id=reasons["price"].pk)

    outcomes.session_accept(session=session)

    assert [event.name for event in timeline(tess)] == ["Offer Accepted", "Cancellation Session Completed"]
    assert timeline(tess)[0].properties["is_test"] is True
    assert not DestinationDelivery.objects.exists()


def test_a_redirect_is_an_accepted_offer_that_deflects(
    fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, product_api, webhook
):
    make_rule(make_offer("redirect", "Talk to support", url="https://help.example.test/", label="Chat with us"))
    session = start(product_api)
    post(product_api, session["token"], "reason", {"reason_id": reasons["features"].pk})

    post(product_api, session["token"], "accept")

    accepted, completed = timeline(bob)
    assert accepted.name == "Offer Accepted"
    assert completed.properties["outcome"] == "deflected"
    assert completed.properties["offer_kind"] == "redirect"
    assert DestinationDelivery.objects.get().idempotency_key == f"offer_accepted:{session['token']}"
