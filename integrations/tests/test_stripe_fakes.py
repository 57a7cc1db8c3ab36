"""Tests of the Stripe test infrastructure: payload builders, webhook signatures and the fake HTTP API.

They pin the fakes to what the installed stripe library (and so the API version it pins) accepts, so tests
built on them exercise the real wire format. No database is needed.
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

import pytest
import requests
import stripe

from integrations.tests import stripe_payloads as payloads
from integrations.tests.fake_stripe import TEST_API_KEY, FakeStripe, decode_params
from integrations.tests.fake_stripe import fake_stripe as fake_stripe

SECRET = "whsec_test_secret"


@pytest.fixture(autouse=True)
def _fresh_ids():
    payloads.reset_ids()


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(stripe, "enable_telemetry", False)
    with FakeStripe() as server:
        yield server


@pytest.fixture
def no_retry_sleep(monkeypatch):
    """The library sleeps at least 0.5 s before each retry; tests need not wait."""
    monkeypatch.setattr(stripe.HTTPClient, "_sleep_time_seconds", lambda self, num_retries: 0.0)


def _catalog(fake: FakeStripe) -> dict[str, Any]:
    """A product, a monthly price, a coupon and an active subscription with one discount, stored in `fake`."""
    product = fake.add(payloads.product("prod_pro", "Pro"))
    price = fake.add(payloads.price("price_pro_monthly", product, 2900))
    yearly = fake.add(payloads.price("price_pro_yearly", product, 29000, interval="year"))
    coupon = fake.add(payloads.coupon("SAVE20", percent_off=20))
    customer = fake.add(payloads.customer("cus_ann", email="ann@example.com", name="Ann"))
    discount = payloads.discount("di_ann", coupon=coupon, customer=customer, subscription="sub_ann")
    subscription = fake.add(
        payloads.subscription(
            "sub_ann", customer, items=[(price, 3)], discounts=[discount], expand_discounts=True, item_ids=["si_ann"]
        )
    )
    return {"price": price, "yearly": yearly, "coupon": coupon, "customer": customer, "subscription": subscription}


# --- Builders and signatures --------------------------------------------------------------------------------


def test_api_version_is_the_one_the_library_pins():
    assert stripe.api_version == payloads.API_VERSION


def test_default_ids_are_deterministic():
    first = [payloads.customer()["id"], payloads.customer()["id"], payloads.price()["id"]]
    payloads.reset_ids()
    assert [payloads.customer()["id"], payloads.customer()["id"], payloads.price()["id"]] == first
    assert first[:2] == ["cus_test0000000001", "cus_test0000000002"]
    assert payloads.customer("cus_explicit")["id"] == "cus_explicit"


def test_signature_verifies_with_the_stripe_library():
    event = payloads.event("customer.created", payloads.customer())
    body, header = payloads.signed(event, SECRET)

    assert stripe.WebhookSignature.verify_header(body.decode(), header, SECRET, tolerance=300)
    assert stripe.WebhookSignature.verify_header(body, header, SECRET, tolerance=300)
    constructed = stripe.Webhook.construct_event(body, header, SECRET, tolerance=300)
    assert constructed.id == event["id"]
    assert constructed.type == "customer.created"
    assert header == payloads.sign(body.decode(), SECRET, int(header.split(",")[0][2:]))


def test_signature_fails_with_a_wrong_secret_or_an_old_timestamp():
    body = payloads.encode(payloads.event("customer.created", payloads.customer()))
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body.decode(), payloads.sign(body, "whsec_other"), SECRET, tolerance=300)
    old = payloads.sign(body, SECRET, timestamp=int(time.time()) - 301)
    with pytest.raises(stripe.SignatureVerificationError, match="outside the tolerance"):
        stripe.WebhookSignature.verify_header(body.decode(), old, SECRET, tolerance=300)
    recent = payloads.sign(body, SECRET, timestamp=int(time.time()) - 200)
    assert stripe.WebhookSignature.verify_header(body.decode(), recent, SECRET, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body.decode() + " ", recent, SECRET, tolerance=300)


def test_multi_signature_verifies_with_either_secret():
    body = payloads.encode(payloads.event("customer.created", payloads.customer()))
    header = payloads.sign_multi(body, ["whsec_old", "whsec_new"])
    assert header.count("v1=") == 2
    for secret in ("whsec_old", "whsec_new"):
        assert stripe.WebhookSignature.verify_header(body.decode(), header, secret, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body.decode(), header, "whsec_third", tolerance=300)


def test_subscription_event_has_the_current_shape():
    price = payloads.price("price_1", "prod_1", 1500)
    coupon = payloads.coupon("HALF", percent_off=50, duration="repeating", duration_in_months=3)
    discount = payloads.discount("di_1", coupon=coupon, customer="cus_1", subscription="sub_1")
    sub = payloads.subscription("sub_1", "cus_1", items=[(price, 2)], status="trialing", discounts=[discount])
    previous = {"status": "incomplete"}
    raw = payloads.event("customer.subscription.updated", sub, previous_attributes=previous)

    event: Any = stripe.Event.construct_from(raw, "sk_test")
    assert isinstance(event.data.object, stripe.Subscription)
    obj: Any = event.data.object
    item = obj.items.data[0]
    assert item.current_period_end == sub["trial_end"] == obj.trial_end
    assert item.current_period_start == obj.trial_start
    assert item.price.product == "prod_1"
    assert item.quantity == 2
    assert obj.discounts == ["di_1"]
    assert "discount" not in raw["data"]["object"]
    assert "current_period_end" not in raw["data"]["object"]
    assert obj.cancellation_details.reason is None
    assert event.data.previous_attributes.status == "incomplete"
    assert event.api_version == "2026-10-28.endive"
    assert raw["request"]["id"].startswith("req_")

    expanded = payloads.subscription("sub_2", "cus_1", discounts=[discount], expand_discounts=True)
    assert expanded["discounts"][0]["source"] == {"type": "coupon", "coupon": "HALF"}
    assert discount["end"] == payloads.add_interval(discount["start"], "month", 3)
    with_coupon = payloads.discount("di_3", coupon=coupon, expand_coupon=True)
    assert with_coupon["source"]["coupon"]["percent_off"] == 50.0


def test_subscription_cancellation_and_pause_shapes():
    scheduled = payloads.subscription("sub_1", cancel_at_period_end=True)
    assert scheduled["cancel_at"] == scheduled["items"]["data"][0]["current_period_end"]
    assert scheduled["cancellation_details"]["reason"] == "cancellation_requested"
    canceled = payloads.subscription(
        "sub_2",
        status="canceled",
        cancellation_details={"feedback": "too_expensive", "reason": "cancellation_requested"},
    )
    assert canceled["ended_at"] == canceled["canceled_at"]
    assert canceled["cancellation_details"] == {
        "comment": None,
        "feedback": "too_expensive",
        "reason": "cancellation_requested",
    }
    paused = payloads.subscription(
        "sub_3", pause_collection=payloads.pause_collection("void", resumes_at=1_900_000_000)
    )
    obj: Any = stripe.Subscription.construct_from(paused, "sk_test")
    assert obj.pause_collection.behavior == "void"
    assert obj.pause_collection.resumes_at == 1_900_000_000


def test_invoice_event_has_the_current_shape():
    price = payloads.price("price_1", "prod_1", 1500)
    raw_invoice = payloads.invoice(
        "in_1",
        "cus_1",
        "sub_1",
        amount_due=3000,
        status="open",
        billing_reason="subscription_cycle",
        attempt_count=2,
        next_payment_attempt=1_900_000_000,
        price_obj=price,
        quantity=2,
        subscription_item="si_1",
    )
    event: Any = stripe.Event.construct_from(payloads.event("invoice.payment_failed", raw_invoice), "sk_test")
    assert isinstance(event.data.object, stripe.Invoice)
    invoice: Any = event.data.object
    assert invoice.parent.subscription_details.subscription == "sub_1"
    for removed in ("subscription", "charge", "payment_intent", "paid"):
        assert removed not in raw_invoice
    assert invoice.amount_remaining == 3000
    assert invoice.attempted is True
    assert invoice.status_transitions.paid_at is None
    assert invoice.last_finalization_error is None
    line = invoice.lines.data[0]
    assert line.pricing.price_details.price == "price_1"
    assert line.parent.subscription_item_details.subscription_item == "si_1"
    assert line.invoice == "in_1"
    assert invoice.total == invoice.subtotal == 3000

    paid = payloads.invoice("in_2", "cus_1", None)
    assert paid["parent"] is None
    assert paid["amount_paid"] == paid["amount_due"]
    assert paid["status_transitions"]["paid_at"] == paid["created"]


def test_charge_refund_dispute_builders_are_accepted():
    failed = payloads.charge("ch_1", "cus_1", status="failed")
    obj: Any = stripe.Charge.construct_from(failed, "sk_test")
    assert (obj.paid, obj.captured, obj.failure_code, obj.balance_transaction) == (False, False, "card_declined", None)
    assert obj.outcome.type == "issuer_declined"
    ok = payloads.charge("ch_2", "cus_1", amount=2900)
    assert ok["paid"] and ok["captured"] and ok["amount_captured"] == 2900
    assert ok["payment_method_details"]["card"]["last4"] == "4242"
    refund = stripe.Refund.construct_from(payloads.refund("re_1", ok, 1000), "sk_test")
    assert (refund.charge, refund.payment_intent, refund.amount) == ("ch_2", ok["payment_intent"], 1000)
    dispute = stripe.Dispute.construct_from(payloads.dispute("du_1", ok, 2900), "sk_test")
    assert (dispute.charge, dispute.status, dispute.reason) == ("ch_2", "needs_response", "fraudulent")
    converted = stripe.convert_to_stripe_object(  # stripe.util is gone in 16.x
        payloads.event("charge.failed", failed)
    )
    assert isinstance(converted, stripe.Event)
    assert isinstance(converted.data.object, stripe.Charge)


def test_automatic_events_have_no_request():
    event = payloads.event("invoice.created", payloads.invoice(), automatic=True)
    assert event["request"] == {"id": None, "idempotency_key": None}


def test_decode_params_rebuilds_nested_values():
    pairs = [
        ("items[0][id]", "si_1"),
        ("items[0][price]", "price_2"),
        ("items[1][price]", "price_3"),
        ("expand[]", "a"),
        ("expand[]", "b"),
        ("metadata[plan]", "pro"),
        ("created[gte]", "10"),
        ("pause_collection", ""),
    ]
    assert decode_params(pairs) == {
        "items": [{"id": "si_1", "price": "price_2"}, {"price": "price_3"}],
        "expand": ["a", "b"],
        "metadata": {"plan": "pro"},
        "created": {"gte": "10"},
        "pause_collection": "",
    }


# --- The fake API ---------------------------------------------------------------------------------------


def test_auto_paging_visits_250_customers_exactly_once(fake):
    for index in range(250):
        fake.add(payloads.customer(created=1_700_000_000 + index // 7))  # many share a second

    listed = [customer.id for customer in fake.client().v1.customers.list({"limit": 100}).auto_paging_iter()]

    assert len(listed) == 250
    assert set(listed) == {customer["id"] for customer in fake.objects("customers")}
    assert listed == [customer["id"] for customer in fake.objects("customers")]  # newest first
    pages = fake.requests_to("GET", "/v1/customers")
    assert len(pages) == 3
    assert pages[1].params == {"limit": "100", "starting_after": listed[99]}


def test_list_defaults_to_ten_and_pages_backwards(fake):
    for index in range(25):
        fake.add(payloads.customer(f"cus_{index:02d}", created=1_700_000_000 + index))
    client = fake.client()

    first = client.v1.customers.list()
    assert [c.id for c in first.data] == [f"cus_{index:02d}" for index in range(24, 14, -1)]
    assert first.has_more is True
    assert first.url == "/v1/customers"

    before = client.v1.customers.list({"ending_before": "cus_05", "limit": 3})
    assert [c.id for c in before.data] == ["cus_08", "cus_07", "cus_06"]
    assert before.has_more is True
    backwards = [c.id for c in client.v1.customers.list({"ending_before": "cus_20"}).auto_paging_iter()]
    assert backwards == [f"cus_{index:02d}" for index in range(21, 25)]

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.customers.list({"limit": 101})
    assert raised.value.param == "limit"


def test_list_filters(fake):
    catalog = _catalog(fake)
    fake.add(payloads.subscription("sub_old", "cus_ann", status="canceled", created=1_600_000_000))
    fake.add(payloads.subscription("sub_bob", "cus_bob", items=[(catalog["yearly"], 1)]))
    fake.add(payloads.charge("ch_1", "cus_ann"))
    fake.add(payloads.charge("ch_2", "cus_bob"))
    fake.add(payloads.invoice("in_1", "cus_ann", "sub_ann"))
    fake.add(payloads.invoice("in_2", "cus_bob", "sub_bob", status="open"))
    client = fake.client()

    assert {s.id for s in client.v1.subscriptions.list().data} == {"sub_ann", "sub_bob"}
    assert {s.id for s in client.v1.subscriptions.list({"status": "all"}).data} == {"sub_ann", "sub_bob", "sub_old"}
    assert [s.id for s in client.v1.subscriptions.list({"status": "canceled"}).data] == ["sub_old"]
    assert [s.id for s in client.v1.subscriptions.list({"customer": "cus_bob"}).data] == ["sub_bob"]
    assert [s.id for s in client.v1.subscriptions.list({"price": "price_pro_yearly"}).data] == ["sub_bob"]
    assert [c.id for c in client.v1.charges.list({"customer": "cus_ann"}).data] == ["ch_1"]
    assert [i.id for i in client.v1.invoices.list({"subscription": "sub_bob"}).data] == ["in_2"]
    assert [i.id for i in client.v1.invoices.list({"status": "paid"}).data] == ["in_1"]
    assert [p.id for p in client.v1.prices.list({"product": "prod_pro", "limit": 1}).data] == ["price_pro_yearly"]

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.charges.list(cast(Any, {"status": "succeeded"}))
    assert raised.value.param == "status"
    assert "Received unknown parameter: status" in str(raised.value.user_message)


def test_events_list_filters_by_created_and_types(fake):
    sub = payloads.subscription("sub_1")
    fake.add(payloads.event("customer.subscription.created", sub, created=1_000))
    fake.add(payloads.event("customer.subscription.updated", sub, created=2_000, id="evt_recent"))
    fake.add(payloads.event("invoice.paid", payloads.invoice(), created=3_000, id="evt_invoice"))
    fake.add(payloads.event("charge.succeeded", payloads.charge(), created=4_000))
    client = fake.client()

    params: Any = {"created": {"gte": 1_500}, "types": ["customer.subscription.updated", "invoice.paid"], "limit": 100}
    listed = [event.id for event in client.v1.events.list(params=params).auto_paging_iter()]
    assert listed == ["evt_invoice", "evt_recent"]
    request = fake.requests_to("GET", "/v1/events")[0]
    assert request.params["created"] == {"gte": "1500"}
    assert request.params["types"] == ["customer.subscription.updated", "invoice.paid"]
    wildcard = client.v1.events.list({"type": "customer.subscription.*"})
    assert [event.type for event in wildcard.data] == ["customer.subscription.updated", "customer.subscription.created"]
    assert isinstance(wildcard.data[0].data.object, stripe.Subscription)


def test_retrieve_honours_expand(fake):
    _catalog(fake)
    client = fake.client()

    plain = client.v1.subscriptions.retrieve("sub_ann")
    assert plain.discounts == ["di_ann"]
    assert plain.items.data[0].price.product == "prod_pro"
    assert plain.customer == "cus_ann"

    expanded = client.v1.subscriptions.retrieve(
        "sub_ann", {"expand": ["discounts.source.coupon", "items.data.price.product", "customer"]}
    )
    assert expanded.discounts[0].source.coupon.percent_off == 20.0
    assert expanded.items.data[0].price.product.name == "Pro"
    assert expanded.customer.email == "ann@example.com"
    only_discounts = client.v1.subscriptions.retrieve("sub_ann", {"expand": ["discounts"]})
    assert only_discounts.discounts[0].id == "di_ann"
    assert only_discounts.discounts[0].source.coupon == "SAVE20"

    listed = client.v1.subscriptions.list({"status": "all", "expand": ["data.discounts.source.coupon"]})
    assert listed.data[0].discounts[0].source.coupon.id == "SAVE20"


def test_unknown_ids_raise_invalid_request_error(fake):
    client = fake.client()
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.customers.retrieve("cus_missing")
    assert raised.value.http_status == 404
    assert raised.value.code == "resource_missing"
    assert raised.value.param == "id"
    assert raised.value.user_message == "No such customer: 'cus_missing'"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update("sub_missing", {"cancel_at_period_end": True})
    with pytest.raises(stripe.InvalidRequestError, match="Unrecognized request URL"):
        client.v1.payment_intents.list()


def test_authentication_is_required(fake):
    answer = requests.get(f"{fake.url}/v1/customers", timeout=5)
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert answer.headers["Request-Id"].startswith("req_")
    with pytest.raises(stripe.AuthenticationError):
        fake.client("sk_live_real").v1.customers.list()
    strict = FakeStripe(api_key="sk_test_expected")
    status, _, _ = strict.handle("GET", "/v1/customers", {"Authorization": "Bearer sk_test_other"}, "")
    assert status == 401
    status, _, body = strict.handle("GET", "/v1/customers", {"Authorization": "Bearer sk_test_expected"}, "")
    assert (status, json.loads(body)["object"]) == (200, "list")


def test_subscription_update_is_applied_recorded_and_evented(fake):
    catalog = _catalog(fake)
    client = fake.client()
    period_end = catalog["subscription"]["items"]["data"][0]["current_period_end"]

    updated = client.v1.subscriptions.update(
        "sub_ann",
        {"cancel_at_period_end": True, "metadata": {"reason": "price"}, "proration_behavior": "none"},
        {"idempotency_key": "cancel-sub_ann-1"},
    )

    assert updated.cancel_at_period_end is True
    assert updated.cancel_at == period_end
    assert updated.cancellation_details.reason == "cancellation_requested"
    assert fake.get("sub_ann")["metadata"] == {"reason": "price"}
    request = fake.requests_to("POST", "/v1/subscriptions/sub_ann")[0]
    assert request.idempotency_key == "cancel-sub_ann-1"
    assert request.params == {
        "cancel_at_period_end": "true",
        "metadata": {"reason": "price"},
        "proration_behavior": "none",
    }
    assert request.api_key == TEST_API_KEY
    assert request.header("stripe-version") == stripe.api_version
    (event,) = fake.objects("events")
    assert event["type"] == "customer.subscription.updated"
    assert event["data"]["previous_attributes"]["cancel_at_period_end"] is False
    assert event["request"] == {"id": event["request"]["id"], "idempotency_key": "cancel-sub_ann-1"}

    reverted = client.v1.subscriptions.update("sub_ann", {"cancel_at_period_end": False})
    assert (reverted.cancel_at, reverted.canceled_at, reverted.cancellation_details.reason) == (None, None, None)
    assert fake.requests[-1].idempotency_key  # the library generates one for every POST


def test_subscription_update_items_trial_pause_and_discounts(fake):
    _catalog(fake)
    fake.add(payloads.coupon("WINBACK", amount_off=500, duration="once"))
    client = fake.client()
    in_a_week = int(time.time()) + 7 * payloads.DAY

    updated = client.v1.subscriptions.update(
        "sub_ann",
        {
            "items": [{"id": "si_ann", "price": "price_pro_yearly", "quantity": 1}],
            "trial_end": in_a_week,
            "pause_collection": {"behavior": "keep_as_draft"},
            "discounts": [{"coupon": "WINBACK"}],
            "proration_behavior": "create_prorations",
            "expand": ["discounts"],
        },
    )

    item = updated.items.data[0]
    assert (item.id, item.price.id, item.plan.interval, item.quantity) == ("si_ann", "price_pro_yearly", "year", 1)
    assert updated.status == "trialing"
    assert updated.trial_end == item.current_period_end == in_a_week
    assert updated.pause_collection.behavior == "keep_as_draft"
    assert updated.pause_collection.resumes_at is None
    assert updated.discounts[0].source.coupon == "WINBACK"
    assert fake.get("sub_ann")["discounts"] == [updated.discounts[0].id]
    assert fake.requests[-1].params["items"] == [{"id": "si_ann", "price": "price_pro_yearly", "quantity": "1"}]

    resumed = client.v1.subscriptions.update("sub_ann", {"pause_collection": "", "trial_end": "now", "discounts": ""})
    assert resumed.pause_collection is None
    assert resumed.status == "active"
    assert resumed.discounts == []
    assert resumed.items.data[0].current_period_end == payloads.add_interval(resumed.trial_end, "year")

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.subscriptions.update("sub_ann", {"discounts": [{"coupon": "NOPE"}]})
    assert (raised.value.code, raised.value.param) == ("resource_missing", "discounts[0][coupon]")
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.subscriptions.update("sub_ann", cast(Any, {"coupon": "WINBACK"}))  # removed from the API
    assert raised.value.param == "coupon"


def test_subscription_cancel(fake):
    _catalog(fake)
    client = fake.client()

    canceled = client.v1.subscriptions.cancel(
        "sub_ann", {"cancellation_details": {"comment": "Too pricey", "feedback": "too_expensive"}}
    )

    assert canceled.status == "canceled"
    assert canceled.canceled_at == canceled.ended_at is not None
    assert canceled.cancellation_details.to_dict() == {
        "comment": "Too pricey",
        "feedback": "too_expensive",
        "reason": "cancellation_requested",
    }
    request = fake.requests_to("DELETE", "/v1/subscriptions/sub_ann")[0]
    assert request.params == {"cancellation_details": {"comment": "Too pricey", "feedback": "too_expensive"}}
    assert [event["type"] for event in fake.objects("events")] == ["customer.subscription.deleted"]
    assert client.v1.subscriptions.list().data == []

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.subscriptions.cancel("sub_ann")
    assert raised.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError, match="can only update its cancellation_details"):
        client.v1.subscriptions.update("sub_ann", {"cancel_at_period_end": True})
    assert client.v1.subscriptions.update("sub_ann", {"metadata": {"note": "ok"}}).metadata.note == "ok"


def test_idempotent_replay_and_conflict(fake):
    _catalog(fake)
    client = fake.client()
    options: Any = {"idempotency_key": "same-key"}

    first = client.v1.subscriptions.update("sub_ann", {"metadata": {"n": "1"}}, options)
    again = client.v1.subscriptions.update("sub_ann", {"metadata": {"n": "1"}}, options)

    assert again.to_dict() == first.to_dict()
    assert fake.requests[-1].replayed is True
    assert len(fake.objects("events")) == 1
    with pytest.raises(stripe.IdempotencyError):
        client.v1.subscriptions.update("sub_ann", {"metadata": {"n": "2"}}, options)


def test_server_errors_are_retried_up_to_max_network_retries(fake, no_retry_sleep):
    _catalog(fake)
    fake.fail_next(2, 500)
    client = fake.client(max_network_retries=2)

    updated = client.v1.subscriptions.update("sub_ann", {"metadata": {"retry": "yes"}})

    assert updated.metadata.retry == "yes"
    attempts = fake.requests_to("POST", "/v1/subscriptions/sub_ann")
    assert [attempt.status for attempt in attempts] == [500, 500, 200]
    assert len({attempt.idempotency_key for attempt in attempts}) == 1  # retries reuse the key

    fake.fail_next(3, 500)
    with pytest.raises(stripe.APIError):
        client.v1.customers.retrieve("cus_ann")
    assert [r.status for r in fake.requests_to("GET", "/v1/customers/cus_ann")] == [500, 500, 500]

    fake.fail_next(1, 500)
    with pytest.raises(stripe.APIError):
        fake.client().v1.customers.retrieve("cus_ann")  # max_network_retries=0
    assert fake.client().v1.customers.retrieve("cus_ann").id == "cus_ann"


def test_rate_limits_are_retried_only_when_stripe_says_so(fake, no_retry_sleep):
    _catalog(fake)
    client = fake.client(max_network_retries=2)

    fake.fail_next(1, 429)
    with pytest.raises(stripe.RateLimitError):
        client.v1.customers.retrieve("cus_ann")
    fake.fail_next(1, 429, should_retry=True)
    assert client.v1.customers.retrieve("cus_ann").id == "cus_ann"
    assert [r.status for r in fake.requests_to("GET", "/v1/customers/cus_ann")] == [429, 429, 200]


def test_module_level_api_is_pointed_at_the_fake_and_restored(fake):
    _catalog(fake)
    for _ in range(12):
        fake.add(payloads.customer())
    before = (stripe.api_key, stripe.api_base, stripe.max_network_retries)

    with fake.configure_stripe_module():
        assert stripe.api_base == fake.url
        listed = [customer.id for customer in stripe.Customer.list(limit=5).auto_paging_iter()]
        modified: Any = stripe.Subscription.modify("sub_ann", pause_collection={"behavior": "void"})
        canceled = stripe.Subscription.cancel("sub_ann")

    assert len(listed) == len(set(listed)) == 13
    assert modified.pause_collection.behavior == "void"
    assert canceled.status == "canceled"
    assert (stripe.api_key, stripe.api_base, stripe.max_network_retries) == before
    assert {request.api_key for request in fake.requests} == {TEST_API_KEY}


def test_fake_stripe_fixture_configures_the_module(fake_stripe):
    fake_stripe.add(payloads.customer("cus_fixture"))
    assert stripe.api_base == fake_stripe.url
    assert stripe.Customer.retrieve("cus_fixture").email == "fixture@example.com"
    assert stripe.max_network_retries == 0


def test_a_bug_in_the_fake_is_answered_not_hung_up(fake, monkeypatch):
    def broken(*args):
        raise KeyError("oops")

    monkeypatch.setattr(fake, "_list", broken)
    with pytest.raises(stripe.APIError, match="FakeStripe failed"):
        fake.client(max_network_retries=2).v1.customers.list()
    assert len(fake.requests) == 1  # Stripe-Should-Retry: false
    assert isinstance(fake.errors[0], KeyError)
