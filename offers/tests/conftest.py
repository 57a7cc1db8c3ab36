"""Fixtures of the offers tests: a fake Stripe holding Bob's subscription, a live flow with three reasons, a
source's write key and an API client authenticated with it, and helpers to make offers and rules."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import stripe
from django.utils import timezone
from rest_framework.test import APIClient

from audiences.models import Customer
from audiences.services import source_create
from integrations.tests import stripe_payloads as payloads
from integrations.tests.fake_stripe import TEST_API_KEY
from offers import services
from offers.models import CancellationFlow, CancellationReason, FlowRule, Offer, OfferRule
from offers.tests.fake_stripe_coupons import FakeStripeWithCoupons
from segments.models import Segment
from segments.services import segment_save
from trials.models import Plan, Product, Subscription

SUBSCRIPTION_ID = "sub_bob"
ITEM_ID = "si_bob"


@pytest.fixture
def fake(settings: Any) -> Iterator[FakeStripeWithCoupons]:
    """The fake Stripe API, with the app's client (settings) and the stripe module pointed at it."""
    running = FakeStripeWithCoupons()
    with running, running.configure_stripe_module():
        settings.STRIPE_API_KEY, settings.STRIPE_API_BASE = TEST_API_KEY, running.url
        stripe.enable_telemetry = False
        yield running


@pytest.fixture
def plans(db: Any) -> dict[str, Plan]:
    product = Product.objects.create(name="Team", stripe_product_id="prod_team")
    return {
        "monthly": Plan.objects.create(
            product=product, name="Team monthly", stripe_price_id="price_team_m", amount_cents=4900
        ),
        "yearly": Plan.objects.create(
            product=product, name="Team yearly", stripe_price_id="price_team_y", amount_cents=49000, interval="year"
        ),
        "lite": Plan.objects.create(
            product=product, name="Lite monthly", stripe_price_id="price_lite", amount_cents=900
        ),
    }


def stripe_subscription(status: str = "active", **extra: Any) -> dict[str, Any]:
    """Bob's subscription as Stripe holds it: one item (si_bob) on price_team_m."""
    price = payloads.price(id="price_team_m", product="prod_team", unit_amount=4900)
    return payloads.subscription(
        id=SUBSCRIPTION_ID, customer="cus_bob", items=[(price, 1)], item_ids=[ITEM_ID], status=status, **extra
    )


@pytest.fixture
def stripe_prices(fake: FakeStripeWithCoupons) -> None:
    fake.add(payloads.price(id="price_team_m", product="prod_team", unit_amount=4900))
    fake.add(payloads.price(id="price_team_y", product="prod_team", unit_amount=49000, interval="year"))
    fake.add(payloads.price(id="price_lite", product="prod_team", unit_amount=900))


@pytest.fixture
def bob(db: Any, plans: dict[str, Plan]) -> Customer:
    """A paying customer whose active subscription is linked to Stripe (sub_bob)."""
    now = timezone.now()
    customer = Customer.objects.create(
        user_id="usr_bob", email="bob@example.test", stripe_customer_id="cus_bob", subscriber_status="active",
        mrr_cents=4900,
    )  # fmt: skip
    Subscription.objects.create(
        customer=customer,
        plan=plans["monthly"],
        stripe_subscription_id=SUBSCRIPTION_ID,
        status=Subscription.Status.ACTIVE,
        started_at=now - timedelta(days=40),
        current_period_start=now - timedelta(days=10),
        current_period_end=now + timedelta(days=20),
        mrr_cents=4900,
    )
    return customer


@pytest.fixture
def tess(db: Any, plans: dict[str, Plan]) -> Customer:
    """A test customer (is_test) with a subscription that exists only here."""
    now = timezone.now()
    customer = Customer.objects.create(user_id="usr_tess", email="tess@example.test", is_test=True)
    Subscription.objects.create(
        customer=customer,
        plan=plans["monthly"],
        status=Subscription.Status.ACTIVE,
        started_at=now - timedelta(days=40),
        current_period_end=now + timedelta(days=20),
        mrr_cents=4900,
    )
    return customer


@pytest.fixture
def reasons(db: Any) -> dict[str, CancellationReason]:
    return {
        "price": CancellationReason.objects.create(label="Too expensive", stripe_feedback="too_expensive", position=1),
        "features": CancellationReason.objects.create(
            label="Missing features", stripe_feedback="missing_features", position=2
        ),
        "unused": CancellationReason.objects.create(label="Not using it", stripe_feedback="unused", position=3),
    }


@pytest.fixture
def flow(reasons: dict[str, CancellationReason]) -> CancellationFlow:
    """The live flow every customer gets (a live flow rule without segments)."""
    created = CancellationFlow.objects.create(name="Standard", ask_feedback=True, is_draft=False)
    created.reasons.set(reasons.values())
    FlowRule.objects.create(flow=created, position=1, is_draft=False)
    return created


@pytest.fixture
def make_offer(db: Any) -> Callable[..., Offer]:
    def make(kind: str, name: str | None = None, **parameters: Any) -> Offer:
        return services.offer_save(name=name or f"{kind} {parameters}", kind=kind, parameters=parameters)

    return make


@pytest.fixture
def make_rule(db: Any) -> Callable[..., OfferRule]:
    def make(*offers: Offer | tuple[Offer, int], **options: Any) -> OfferRule:
        weighted = [entry if isinstance(entry, tuple) else (entry, 1) for entry in offers]
        options.setdefault("is_draft", False)
        if not weighted:
            options.setdefault("no_offer", True)
        return services.offer_rule_save(offers=weighted, **options)

    return make


@pytest.fixture
def make_segment(db: Any) -> Callable[..., Segment]:
    def make(name: str, *leaves: dict[str, Any]) -> Segment:
        conditions = {
            "type": "group",
            "operator": "and",
            "children": [{"type": "condition", **leaf} for leaf in leaves],
        }
        return segment_save(name=name, conditions=conditions)

    return make


@pytest.fixture
def write_key(db: Any) -> str:
    _, key = source_create(name="Product")
    return key


@pytest.fixture
def product_api(write_key: str) -> APIClient:
    """The product calling the session API with its source's write key (HTTP Basic user name)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{write_key}:".encode()).decode())
    return client


SESSIONS = "/api/v1/cancellation-sessions/"


def start(api: APIClient, **body: Any) -> dict[str, Any]:
    response = api.post(SESSIONS, body or {"user_id": "usr_bob"}, format="json")
    assert response.status_code in (200, 201), response.content
    return dict(response.json())


def post(
    api: APIClient, token: str, move: str, body: dict[str, Any] | None = None, expect: int = 200
) -> dict[str, Any]:
    response = api.post(f"{SESSIONS}{token}/{move}/", body or {}, format="json")
    assert response.status_code == expect, response.content
    return dict(response.json())
