"""Fixtures of the offers tests: a fake Stripe holding Bob's subscription, a live flow with three reasons, a
source's keys and the product's API client (server or browser start, then the session token), and helpers to
make offers and rules."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import stripe
from django.utils import timezone
from rest_framework.test import APIClient

from audiences.models import Customer, Source
from audiences.services import auth_hash, source_create
from integrations.stripe.models import Plan, Product, Subscription
from integrations.tests import stripe_payloads as payloads
from integrations.tests.fake_stripe import TEST_API_KEY
from offers import configuration
from offers.models import CancellationFlow, CancellationReason, FlowRule, Offer, OfferRule
from offers.tests.fake_stripe_coupons import FakeStripeWithCoupons
from segments.models import Segment
from segments.services import segment_save

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
        return configuration.offer_save(name=name or f"{kind} {parameters}", kind=kind, parameters=parameters)

    return make


@pytest.fixture
def make_rule(db: Any) -> Callable[..., OfferRule]:
    def make(*offers: Offer | tuple[Offer, int], **options: Any) -> OfferRule:
        weighted = [entry if isinstance(entry, tuple) else (entry, 1) for entry in offers]
        options.setdefault("is_draft", False)
        if not weighted:
            options.setdefault("no_offer", True)
        return configuration.offer_rule_save(offers=weighted, **options)

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


@dataclass(frozen=True)
class ProductKeys:
    """The product's source and its keys: the write key its browser holds, the secret key its server holds."""

    source: Source
    write_key: str
    secret_key: str


@pytest.fixture
def product_keys(db: Any) -> ProductKeys:
    source, write_key = source_create(name="Product")
    return ProductKeys(source=source, write_key=write_key, secret_key=source.secret_key)


@pytest.fixture
def write_key(product_keys: ProductKeys) -> str:
    return product_keys.write_key


SESSIONS = "/api/v1/cancellation-sessions/"


class ProductAPI(APIClient):
    """The product calling the session API: a start from its server (`Authorization: Bearer <secret key>`), or
    from its customer's browser (the write key, with the auth_hash the server signed for the user id), then every
    call on a session with the session token that session's start answered."""

    def __init__(self, keys: ProductKeys, *, browser: bool = False) -> None:
        super().__init__()
        self.keys, self.browser = keys, browser
        self.session_tokens: dict[str, str] = {}

    def start_call(self, body: dict[str, Any]) -> Any:
        """POST the start; a successful answer's session token is kept for the calls on that session."""
        if self.browser:
            body = {"auth_hash": auth_hash(self.keys.secret_key, str(body.get("user_id", ""))), **body}
            credentials = base64.b64encode(f"{self.keys.write_key}:".encode()).decode()
            response = self.post(SESSIONS, body, format="json", HTTP_AUTHORIZATION=f"Basic {credentials}")
        else:
            response = self.post(SESSIONS, body, format="json", HTTP_AUTHORIZATION=f"Bearer {self.keys.secret_key}")
        if response.status_code in (200, 201):
            answer = response.json()
            self.session_tokens[answer["token"]] = answer["session_token"]
        return response

    def session_call(self, token: str, move: str = "", body: dict[str, Any] | None = None) -> Any:
        """GET the session (no move) or POST a move, with the session token its start answered."""
        path = f"{SESSIONS}{token}/{move + '/' if move else ''}"
        bearer = f"Bearer {self.session_tokens[token]}"
        if not move:
            return self.get(path, HTTP_AUTHORIZATION=bearer)
        return self.post(path, body or {}, format="json", HTTP_AUTHORIZATION=bearer)


@pytest.fixture
def product_api(product_keys: ProductKeys) -> ProductAPI:
    """The product's server calling the session API with its source's secret key."""
    return ProductAPI(product_keys)


@pytest.fixture
def browser_api(product_keys: ProductKeys) -> ProductAPI:
    """The product's page in the customer's browser: the write key and an auth_hash its server computed."""
    return ProductAPI(product_keys, browser=True)


def start(api: ProductAPI, **body: Any) -> dict[str, Any]:
    response = api.start_call(body or {"user_id": "usr_bob"})
    assert response.status_code in (200, 201), response.content
    return dict(response.json())


def post(
    api: ProductAPI, token: str, move: str, body: dict[str, Any] | None = None, expect: int = 200
) -> dict[str, Any]:
    response = api.session_call(token, move, body)
    assert response.status_code == expect, response.content
    return dict(response.json())
