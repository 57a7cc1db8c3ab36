"""Backfill and reconcile against a local fake of the Stripe API (no network): what lands, resuming, reconciling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from django.core.management import CommandError, call_command
from django.test import TestCase

from audiences.models import Customer
from integrations.stripe.api import stripe_client
from integrations.stripe.event_models import StripeEvent, StripeSyncCursor
from integrations.stripe.models import Charge, Coupon, Plan, Product, StripeCustomer, Subscription
from integrations.stripe.sync import stripe_events_reconcile, stripe_sync_run
from integrations.tests import stripe_payloads as sp
from integrations.tests.fake_stripe import TEST_API_KEY, FakeStripe


@pytest.fixture
def fake(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    sp.reset_ids()
    monkeypatch.setattr(stripe.HTTPClient, "_sleep_time_seconds", lambda self, num_retries: 0.0)
    with FakeStripe() as server:
        settings.STRIPE_API_KEY = TEST_API_KEY
        settings.STRIPE_API_BASE = server.url
        yield server


def seed_account(fake: FakeStripe) -> None:
    """A small Stripe account: two customers (one matches a profile), a discounted subscription, charges."""
    fake.add(sp.product("prod_team", name="Team"))
    team = sp.price("price_team_y", product="prod_team", unit_amount=120000, interval="year", nickname="Team yearly")
    fake.add(team)
    quarter_off = sp.coupon("QUARTER", percent_off=25, duration="forever")
    fake.add(quarter_off)
    fake.add(sp.customer("cus_ada", email="ada@acme.test"))
    fake.add(sp.customer("cus_stranger", email="who@nowhere.test"))
    discount = sp.discount("di_1", coupon=quarter_off, customer="cus_ada", subscription="sub_ada", expand_coupon=True)
    fake.add(
        sp.subscription(
            "sub_ada",
            customer="cus_ada",
            items=[(team, 2)],
            status="active",
            discounts=[discount],
            expand_discounts=True,
        )
    )
    fake.add(sp.subscription("sub_stranger", customer="cus_stranger", items=[(team, 1)], status="active"))
    fake.add(sp.charge("ch_1", customer="cus_ada", amount=180000))
    fake.add(sp.charge("ch_2", customer="cus_ada", amount=180000, amount_refunded=30000))


@pytest.mark.django_db
def test_backfill_mirrors_the_account(fake: FakeStripe, capsys: pytest.CaptureFixture[str]) -> None:
    ada = Customer.objects.create(user_id="usr_ada", email="ada@acme.test")
    seed_account(fake)
    call_command("stripe_sync")
    out = capsys.readouterr().out
    assert "skipped (customer not linked): 1" in out

    assert Product.objects.get(stripe_product_id="prod_team").name == "Team"
    assert Plan.objects.get(stripe_price_id="price_team_y").amount_cents == 120000
    assert Coupon.objects.get(stripe_coupon_id="QUARTER").percent_off == 25
    subscription = Subscription.objects.get(stripe_subscription_id="sub_ada")
    assert (subscription.customer_id, subscription.quantity, subscription.coupon_id) == (ada.pk, 2, "QUARTER")
    assert subscription.mrr_cents == 15000  # 1,200 a year × 2 seats ÷ 12, minus 25 % forever
    assert not Subscription.objects.filter(stripe_subscription_id="sub_stranger").exists()
    assert StripeCustomer.objects.get(stripe_customer_id="cus_stranger").customer is None
    assert Charge.objects.count() == 2
    ada.refresh_from_db()
    assert (ada.mrr_cents, ada.ltv_cents, ada.traits["spend_tier"]) == (15000, 330000, "high")
    listed = fake.requests_to("GET", "/v1/subscriptions")
    assert listed[0].params.get("status") == "all"


@pytest.mark.django_db
def test_an_interrupted_backfill_resumes_where_it_stopped(fake: FakeStripe) -> None:
    for index in range(250):
        fake.add(sp.customer(f"cus_{index:04d}", email=f"c{index}@x.test"))
    pages: list[int] = []

    def fail_after_first_page(collection: str, count: int) -> None:
        pages.append(count)
        if len(pages) == 1:
            fake.fail_next(3, 500)  # the request and both of the client's retries fail: the run stops

    with pytest.raises(stripe.APIError):
        stripe_sync_run(client=stripe_client(), collections=("customers",), on_progress=fail_after_first_page)
    cursor = StripeSyncCursor.objects.get(collection="customers")
    assert cursor.completed_at is None
    assert StripeCustomer.objects.count() == 100
    resumed_from = cursor.last_id

    report = stripe_sync_run(client=stripe_client(), collections=("customers",))
    assert report.applied["customers"] == 150
    assert StripeCustomer.objects.count() == 250
    first_resumed = [r for r in fake.requests_to("GET", "/v1/customers") if r.status == 200][-2]
    assert first_resumed.params.get("starting_after") == resumed_from
    assert StripeSyncCursor.objects.get(collection="customers").completed_at is not None


@pytest.mark.django_db
def test_reconcile_processes_only_events_no_webhook_delivered(fake: FakeStripe) -> None:
    Customer.objects.create(user_id="usr_ada", email="ada@acme.test")
    delivered = sp.event("customer.created", sp.customer("cus_ada", email="ada@acme.test"), id="evt_delivered")
    missed = sp.event("customer.updated", sp.customer("cus_ada", email="ada@acme.test", name="Ada L."), id="evt_missed")
    fake.add(delivered)
    fake.add(missed)
    StripeEvent.objects.create(
        event_id="evt_delivered", type="customer.created", created="2026-11-01T00:00:00Z", payload=delivered
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert stripe_events_reconcile(client=stripe_client()) == 1
    assert StripeEvent.objects.get(event_id="evt_missed").status == "processed"
    assert StripeCustomer.objects.get().name == "Ada L."
    assert stripe_events_reconcile(client=stripe_client()) == 0


@pytest.mark.django_db
def test_without_an_api_key_the_command_says_so(settings: Any) -> None:
    settings.STRIPE_API_KEY = ""
    with pytest.raises(CommandError, match="Set STRIPE_API_KEY"):
        call_command("stripe_sync")


@pytest.mark.django_db
def test_an_unknown_collection_is_refused(fake: FakeStripe) -> None:
    with pytest.raises(CommandError, match="Unknown collection"):
        call_command("stripe_sync", "--only", "payouts")


@pytest.mark.django_db
@pytest.mark.parametrize("with_api_key", [True, False])
def test_a_discount_sent_as_an_id_is_read_from_the_api_when_a_key_is_configured(
    fake: FakeStripe, settings: Any, with_api_key: bool
) -> None:
    from django.test import Client

    if not with_api_key:
        settings.STRIPE_API_KEY = ""
    settings.STRIPE_WEBHOOK_SECRETS = ["whsec_test"]
    Customer.objects.create(user_id="usr_ada", email="ada@acme.test")
    monthly = sp.price("price_m", product="prod_x", unit_amount=10000)
    half_off = sp.coupon("HALF", percent_off=50, duration="forever")
    discount = sp.discount("di_1", coupon=half_off, customer="cus_ada", subscription="sub_1", expand_coupon=True)
    stored = sp.subscription(
        "sub_1", customer="cus_ada", items=[(monthly, 1)], discounts=[discount], expand_discounts=True
    )
    for obj in (sp.customer("cus_ada", email="ada@acme.test"), half_off, discount, stored):
        fake.add(obj)
    as_sent = sp.subscription("sub_1", customer="cus_ada", items=[(monthly, 1)], discounts=["di_1"])
    for event in (
        sp.event("customer.created", sp.customer("cus_ada", email="ada@acme.test")),
        sp.event("customer.subscription.created", as_sent),
    ):
        body, header = sp.signed(event, "whsec_test")
        with TestCase.captureOnCommitCallbacks(execute=True):
            Client().post("/webhooks/stripe/", data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)
    subscription = Subscription.objects.get()
    if with_api_key:
        assert (subscription.coupon_id, subscription.mrr_cents) == ("HALF", 5000)
        assert fake.requests_to("GET", "/v1/subscriptions/sub_1")
    else:
        assert (subscription.coupon_id, subscription.mrr_cents) == ("", 10000)
