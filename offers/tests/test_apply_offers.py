"""Accepting each kind of offer sends exactly the right request through the stripe library (against the local
fake Stripe API); confirming a cancellation sends the reason as Stripe's feedback; retries reuse keys."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from audiences.models import Customer
from integrations.stripe.models import Subscription
from integrations.tests import stripe_payloads as payloads
from integrations.tests.fake_stripe import StripeApiError
from offers.models import CancellationSession, SessionStep
from offers.stripe_requests import add_interval, add_months, coupon_id_for
from offers.tests.conftest import ITEM_ID, SUBSCRIPTION_ID, post, start, stripe_subscription

pytestmark = pytest.mark.django_db

SUB_PATH = f"/v1/subscriptions/{SUBSCRIPTION_ID}"


def to_offer(api, reason_id: int, feedback: str = "") -> Any:
    session = start(api)
    answer = post(api, session["token"], "reason", {"reason_id": reason_id, "feedback": feedback})
    assert answer["stage"] == "offer", answer
    return answer


def posts(fake) -> Any:
    return fake.requests_to("POST")


def test_percent_discount_creates_the_coupon_then_replaces_the_discount(
    fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, product_api
):
    fake.add(stripe_subscription())
    offer = make_offer("discount", "20% for 3 months", percent_off=20, duration="repeating", duration_in_months=3)
    make_rule(offer)
    session = to_offer(product_api, reasons["price"].pk)

    result = post(product_api, session["token"], "accept")

    coupon_id = coupon_id_for(offer)
    create_coupon, update = posts(fake)
    assert create_coupon.path == "/v1/coupons"
    assert create_coupon.params == {
        "id": coupon_id,
        "name": "20% for 3 months",
        "duration": "repeating",
        "duration_in_months": "3",
        "percent_off": "20.0",
    }
    assert create_coupon.idempotency_key == f"trialloop:{session['token']}:accept:coupon:1"
    assert update.path == SUB_PATH
    assert update.params == {"discounts": [{"coupon": coupon_id}]}
    assert update.idempotency_key == f"trialloop:{session['token']}:accept:update:1"
    assert fake.get(SUBSCRIPTION_ID)["discounts"]  # the fake applied it
    assert result["outcome"] == "saved"
    assert result["accepted_offer_id"] == offer.pk
    saved: Any = CancellationSession.objects.get(token=session["token"])
    assert saved.offer_active_until == add_months(saved.outcome_at, 3)


def test_fixed_discount_once_keeps_the_existing_coupon(
    fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, product_api
):
    old = payloads.coupon("OLD10", percent_off=10)
    fake.add(old)
    fake.add(stripe_subscription(discounts=[payloads.discount("di_old", coupon=old)], expand_discounts=True))
    offer = make_offer(
        "discount",
        "$10 off next invoice",
        amount_off_cents=1000,
        currency="USD",
        duration="once",
        existing_coupon="keep",
    )
    make_rule(offer)
    session = to_offer(product_api, reasons["price"].pk)

    post(product_api, session["token"], "accept")

    create_coupon, update = posts(fake)
    assert create_coupon.params == {
        "id": coupon_id_for(offer),
        "name": "$10 off next invoice",
        "duration": "once",
        "amount_off": "1000",
        "currency": "usd",
    }
    assert update.params == {"discounts": [{"discount": "di_old"}, {"coupon": coupon_id_for(offer)}]}
    saved: Any = CancellationSession.objects.select_related("subscription").get(token=session["token"])
    # once: the next invoice is discounted, which pays for the period after the current one
    assert saved.offer_active_until == add_interval(saved.subscription.current_period_end, "month", 1)


def test_a_coupon_already_in_stripe_is_reused(
    fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, product_api
):
    fake.add(stripe_subscription())
    offer = make_offer("discount", "Half off for ever", percent_off=50, duration="forever")
    fake.add(payloads.coupon(coupon_id_for(offer), percent_off=50, duration="forever"))
    make_rule(offer)
    session = to_offer(product_api, reasons["price"].pk)

    post(product_api, session["token"], "accept")

    assert [r.path for r in posts(fake)] == [SUB_PATH]
    assert fake.requests_to("GET", f"/v1/coupons/{coupon_id_for(offer)}")[0].status == 200
    assert CancellationSession.objects.get(token=session["token"]).offer_active_until is None  # for ever


def test_trial_extension_moves_trial_end(fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, product_api):
    trial_end = timezone.now().replace(microsecond=0) + timedelta(days=5)
    Subscription.objects.filter(customer=bob).update(status="trialing", trial_end=trial_end)
    fake.add(stripe_subscription(status="trialing", trial_end=int(trial_end.timestamp())))
    make_rule(make_offer("trial_extension", days=7))
    session = to_offer(product_api, reasons["unused"].pk)

    post(product_api, session["token"], "accept")

    (update,) = posts(fake)
    expected = trial_end + timedelta(days=7)
    assert update.path == SUB_PATH
    assert update.params == {"trial_end": str(int(expected.timestamp()))}
    assert CancellationSession.objects.get(token=session["token"]).offer_active_until == expected


@pytest.mark.parametrize(
    ("parameters", "expected_end"),
    [
        ({"unit": "months", "count": 2}, lambda now: add_months(now, 2)),
        ({"unit": "weeks", "count": 3}, lambda now: now + timedelta(weeks=3)),
        ({"unit": "days", "count": 10}, lambda now: now + timedelta(days=10)),
    ],
)
def test_pause_voids_invoices_until_it_resumes(
    fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, product_api, parameters, expected_end
):
    fake.add(stripe_subscription())
    make_rule(make_offer("pause", **parameters))
    session = to_offer(product_api, reasons["unused"].pk)

    post(product_api, session["token"], "accept")

    (update,) = posts(fake)
    saved: Any = CancellationSession.objects.get(token=session["token"])
    resumes = expected_end(saved.outcome_at)
    assert update.params == {"pause_collection": {"behavior": "void", "resumes_at": str(int(resumes.timestamp()))}}
    assert saved.offer_active_until == resumes
    assert fake.get(SUBSCRIPTION_ID)["pause_collection"] == {"behavior": "void", "resumes_at": int(resumes.timestamp())}


def test_pause_until_a_date(fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, product_api):
    fake.add(stripe_subscription())
    until = (timezone.now() + timedelta(days=45)).date()
    make_rule(make_offer("pause", until=until.isoformat()))
    session = to_offer(product_api, reasons["unused"].pk)

    post(product_api, session["token"], "accept")

    (update,) = posts(fake)
    saved: Any = CancellationSession.objects.get(token=session["token"])
    assert saved.offer_active_until.date() == until
    assert update.params["pause_collection"] == {
        "behavior": "void",
        "resumes_at": str(int(saved.offer_active_until.timestamp())),
    }


def test_plan_change_swaps_the_item_price_with_the_chosen_proration(
    fake, stripe_prices, bob, plans, flow, reasons, make_offer, make_rule, product_api
):
    fake.add(stripe_subscription())
    make_rule(make_offer("plan_change", plan_id=plans["lite"].pk, proration_behavior="none"))
    session = to_offer(product_api, reasons["price"].pk)

    result = post(product_api, session["token"], "accept")

    assert fake.requests_to("GET", SUB_PATH)  # the item id is read from Stripe
    (update,) = posts(fake)
    assert update.params == {"items": [{"id": ITEM_ID, "price": "price_lite"}], "proration_behavior": "none"}
    assert fake.get(SUBSCRIPTION_ID)["items"]["data"][0]["price"]["id"] == "price_lite"
    assert result["outcome"] == "saved"
    assert result["offer_active_until"] is None


def test_redirect_sends_nothing_and_deflects(fake, bob, flow, reasons, make_offer, make_rule, product_api):
    fake.add(stripe_subscription())
    make_rule(make_offer("redirect", url="https://support.example.test/chat", label="Chat with us"))
    session = to_offer(product_api, reasons["features"].pk)

    result = post(product_api, session["token"], "accept")

    assert posts(fake) == []
    assert result["outcome"] == "deflected"
    assert Customer.objects.get(pk=bob.pk).subscriber_status == "active"


def test_decline_then_confirm_cancels_at_period_end_with_feedback(
    fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, product_api
):
    fake.add(stripe_subscription())
    make_rule(make_offer("trial_extension", days=7))
    session = to_offer(product_api, reasons["price"].pk, feedback="  Cheaper elsewhere  ")

    declined = post(product_api, session["token"], "decline")
    assert declined["stage"] == "confirm"
    assert posts(fake) == []
    result = post(product_api, session["token"], "confirm-cancel")

    (update,) = posts(fake)
    assert update.path == SUB_PATH
    assert update.params == {
        "cancel_at_period_end": "true",
        "cancellation_details": {"feedback": "too_expensive", "comment": "Cheaper elsewhere"},
    }
    assert update.idempotency_key == f"trialloop:{session['token']}:confirm_cancel:update:1"
    assert result["outcome"] == "canceled"
    assert fake.get(SUBSCRIPTION_ID)["cancel_at_period_end"] is True
    kinds = list(SessionStep.objects.filter(session__token=session["token"]).values_list("kind", flat=True))
    assert kinds == ["start", "reason", "decline", "confirm_cancel"]


def test_a_flow_that_cancels_at_once_deletes_the_subscription(
    fake, stripe_prices, bob, flow, reasons, make_rule, product_api
):
    flow.cancel_immediately = True
    flow.save()
    fake.add(stripe_subscription())
    make_rule()  # no offer
    session = start(product_api)
    answer = post(product_api, session["token"], "reason", {"reason_id": reasons["unused"].pk})
    assert answer["stage"] == "confirm"
    assert answer["offer"] is None

    post(product_api, session["token"], "confirm-cancel")

    (cancel,) = fake.requests_to("DELETE")
    assert cancel.path == SUB_PATH
    assert cancel.params == {"cancellation_details": {"feedback": "unused"}}
    assert cancel.idempotency_key == f"trialloop:{session['token']}:confirm_cancel:cancel:1"
    assert fake.get(SUBSCRIPTION_ID)["status"] == "canceled"


class TestRetries:
    def test_a_server_error_fails_the_step_and_the_retry_reuses_the_key(
        self, fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, product_api
    ):
        fake.add(stripe_subscription())
        make_rule(make_offer("pause", unit="days", count=10))
        session = to_offer(product_api, reasons["unused"].pk)
        fake.fail_next(3, 500)  # the library's own two retries fail too

        failed = post(product_api, session["token"], "accept", expect=502)

        assert failed["code"] == "stripe_error"
        assert failed["retryable"] is True
        assert "Stripe could not apply this step" in failed["error"]
        step = SessionStep.objects.get(session__token=session["token"], kind="accept")
        assert step.status == "failed"
        assert CancellationSession.objects.get(token=session["token"]).outcome == "incomplete"

        result = post(product_api, session["token"], "accept")

        attempts = posts(fake)
        assert len(attempts) == 4
        assert {a.idempotency_key for a in attempts} == {f"trialloop:{session['token']}:accept:update:1"}
        assert len({a.body for a in attempts}) == 1  # the very same request
        assert [a.status for a in attempts] == [500, 500, 500, 200]
        assert result["outcome"] == "saved"
        step.refresh_from_db()
        assert (step.status, step.attempts) == ("succeeded", 2)

    def test_after_a_card_error_the_retry_uses_a_new_key(
        self, fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, product_api
    ):
        fake.add(stripe_subscription())
        make_rule(make_offer("pause", unit="months", count=1))
        session = to_offer(product_api, reasons["price"].pk)
        fake.fail_next(1, 402)

        failed = post(product_api, session["token"], "accept", expect=502)
        assert failed["stripe"]["status"] == 402

        post(product_api, session["token"], "accept")

        first, second = posts(fake)
        assert first.params == second.params
        assert first.idempotency_key == f"trialloop:{session['token']}:accept:update:1"
        assert second.idempotency_key == f"trialloop:{session['token']}:accept:update:2"
        assert [first.status, second.status] == [402, 200]

    def test_a_created_coupon_is_not_created_again_on_retry(
        self, fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, product_api
    ):
        fake.add(stripe_subscription())
        make_rule(make_offer("discount", percent_off=15, duration="forever"))
        session = to_offer(product_api, reasons["price"].pk)
        original = fake._update_subscription
        calls = {"n": 0}

        def failing_once(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 1:
                raise StripeApiError(500, "boom", type="api_error", headers={"Stripe-Should-Retry": "false"})
            return original(*args, **kwargs)

        fake._update_subscription = failing_once
        post(product_api, session["token"], "accept", expect=502)
        post(product_api, session["token"], "accept")

        assert [r.path for r in posts(fake)] == ["/v1/coupons", SUB_PATH, SUB_PATH]

    def test_accepting_twice_applies_once_and_answers_the_same(
        self, fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, product_api
    ):
        fake.add(stripe_subscription())
        make_rule(make_offer("trial_extension", days=14))
        session = to_offer(product_api, reasons["unused"].pk)

        first = post(product_api, session["token"], "accept")
        second = post(product_api, session["token"], "accept")

        assert first == second
        assert len(posts(fake)) == 1

    def test_without_a_stripe_key_the_product_is_told(
        self, settings, bob, flow, reasons, make_offer, make_rule, product_api
    ):
        settings.STRIPE_API_KEY = ""
        make_rule(make_offer("trial_extension", days=14))
        session = to_offer(product_api, reasons["unused"].pk)

        answer = post(product_api, session["token"], "accept", expect=503)

        assert answer["code"] == "stripe_not_configured"


class TestTestMode:
    def test_a_test_customer_session_calls_nothing_and_records_the_offer_as_simulated(
        self, fake, tess, flow, reasons, make_offer, make_rule, product_api
    ):
        offer = make_offer("discount", percent_off=30, duration="once")
        make_rule(offer)
        session = start(product_api, user_id="usr_tess")
        assert session["is_test"] is True
        post(product_api, session["token"], "reason", {"reason_id": reasons["price"].pk})

        result = post(product_api, session["token"], "accept")

        assert fake.requests == []
        assert result["outcome"] == "saved"
        assert result["offer_simulated"] is True
        step = SessionStep.objects.get(session__token=session["token"], kind="accept")
        assert step.status == "simulated"
        assert [call["method"] for call in step.stripe_calls] == ["coupons.create", "subscriptions.update"]
        assert all(call["status"] == "simulated" for call in step.stripe_calls)

    def test_a_test_session_cancels_nothing_in_stripe(self, fake, tess, flow, reasons, make_rule, product_api):
        make_rule()
        session = start(product_api, user_id="usr_tess")
        post(product_api, session["token"], "reason", {"reason_id": reasons["unused"].pk})

        result = post(product_api, session["token"], "confirm-cancel")

        assert fake.requests == []
        assert result["outcome"] == "canceled"
