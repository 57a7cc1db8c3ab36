"""Saved, then Reactivated, end to end: Stripe webhooks mirror Dan's subscription, a cancellation session saves
him (Saved), his subscription later ends (Canceled) and he subscribes again (Reactivated) — the statuses
`integrations.stripe.traits.customer_billing_refresh` derives from what billing mirrors."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, TestCase

from audiences.models import Customer
from integrations.tests import stripe_payloads as sp
from offers import outcomes, sessions
from offers.models import CancellationSession

pytestmark = pytest.mark.django_db

SECRET = "whsec_offers_reactivated"


def deliver(event: dict[str, Any]) -> None:
    body, header = sp.signed(event, SECRET)
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = Client().post(
            "/webhooks/stripe/", data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
        )
    assert response.status_code == 200, response.content


def status() -> str:
    return str(Customer.objects.get(user_id="usr_dan").subscriber_status)


def test_saved_then_lapsed_then_back_is_reactivated(settings, fake, flow, reasons, make_offer, make_rule):
    settings.STRIPE_WEBHOOK_SECRETS = [SECRET]
    Customer.objects.create(user_id="usr_dan", email="dan@example.test")
    t0 = sp.now() - 10_000
    price = sp.price("price_dan_m", product="prod_dan", unit_amount=4900)
    first = sp.subscription("sub_dan_1", customer="cus_dan", items=[(price, 1)], status="active", created=t0)
    fake.add(sp.customer("cus_dan", email="dan@example.test"))
    fake.add(price)
    fake.add(first)
    deliver(sp.event("customer.created", sp.customer("cus_dan", email="dan@example.test"), created=t0 + 1))
    deliver(sp.event("product.created", sp.product("prod_dan", name="Dan's plan"), created=t0 + 2))
    deliver(sp.event("price.created", price, created=t0 + 3))
    deliver(sp.event("customer.subscription.created", first, created=t0 + 4))
    assert status() == "active"

    make_rule(make_offer("trial_extension", "Two free weeks", days=14))
    session, _ = sessions.session_start(source=None, user_id="usr_dan")
    session = sessions.session_answer_reason(session=session, reason_id=reasons["price"].pk)
    outcomes.session_accept(session=session)
    assert CancellationSession.objects.get().outcome == "saved"
    assert status() == "saved"

    deliver(sp.event("customer.subscription.updated", fake.get("sub_dan_1"), created=t0 + 10))
    assert status() == "saved"  # billing keeps Saved while the saved subscription runs

    ended = {**fake.get("sub_dan_1"), "status": "canceled", "canceled_at": t0 + 20, "ended_at": t0 + 20}
    deliver(sp.event("customer.subscription.deleted", ended, created=t0 + 20))
    assert status() == "canceled"

    second = sp.subscription("sub_dan_2", customer="cus_dan", items=[(price, 1)], status="active", created=t0 + 30)
    deliver(sp.event("customer.subscription.created", second, created=t0 + 30))
    assert status() == "reactivated"
