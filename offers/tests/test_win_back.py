"""Win-back sessions for trials that lapsed unpaid: who qualifies (the 30-day recovery window, what billing
mirrors), how the win-back rules pick the offer, and the exact new subscription Stripe is asked for."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from audiences.models import Customer
from integrations.stripe.models import Plan, Subscription
from integrations.tests import stripe_payloads as payloads
from offers.models import CancellationSession, OfferRule
from offers.stripe_requests import coupon_id_for
from offers.tests.conftest import post
from offers.win_back import lapsed_trials

pytestmark = pytest.mark.django_db

LAPSED_ID = "sub_carol_trial"


@pytest.fixture
def carol(db: Any, plans: dict[str, Plan]) -> Customer:
    """A customer whose 14-day trial ended unpaid 5 days ago: Stripe canceled it (no payment method)."""
    now = timezone.now()
    customer = Customer.objects.create(
        user_id="usr_carol", email="carol@example.test", stripe_customer_id="cus_carol", subscriber_status=""
    )
    Subscription.objects.create(
        customer=customer,
        plan=plans["monthly"],
        stripe_subscription_id=LAPSED_ID,
        status=Subscription.Status.CANCELED,
        started_at=now - timedelta(days=19),
        trial_start=now - timedelta(days=19),
        trial_end=now - timedelta(days=5),
        canceled_at=now - timedelta(days=5),
        ended_at=now - timedelta(days=5),
    )
    return customer


@pytest.fixture
def stripe_carol(fake: Any, stripe_prices: None) -> None:
    fake.add(payloads.customer("cus_carol", email="carol@example.test"))


def win_back(api: Any, expect: int = 201, **body: Any) -> dict[str, Any]:
    response = api.start_call({"kind": "win_back", **body})
    assert response.status_code == expect, response.content
    return dict(response.json())


def test_a_trial_extension_wins_back_with_a_new_trialing_subscription(
    fake, stripe_carol, carol, flow, make_offer, make_rule, product_api
):
    cancel_offer = make_offer("discount", "Cancel-flow discount", percent_off=50, duration="once")
    make_rule(cancel_offer)  # a cancellation rule: never used for win-backs
    extension = make_offer("trial_extension", "One more week", days=7)
    make_rule(extension, applies_to=OfferRule.AppliesTo.WIN_BACK)

    session = win_back(product_api, user_id="usr_carol")

    assert session["kind"] == "win_back"
    assert session["stage"] == "offer"
    assert session["offer"]["id"] == extension.pk
    assert session["subscription_id"] == LAPSED_ID
    before = int(timezone.now().timestamp())
    done = post(product_api, session["token"], "accept")
    after = int(timezone.now().timestamp())

    (create,) = fake.requests_to("POST")
    assert create.path == "/v1/subscriptions"
    trial_end = int(create.params["trial_end"])
    assert before + 7 * 86400 <= trial_end <= after + 7 * 86400
    assert create.params == {
        "customer": "cus_carol",
        "items": [{"price": "price_team_m", "quantity": "1"}],
        "metadata": {"trialloop_win_back_session": session["token"], "trialloop_lapsed_subscription": LAPSED_ID},
        "trial_end": str(trial_end),
    }
    assert create.idempotency_key == f"trialloop:{session['token']}:accept:create:1"
    assert done["outcome"] == "recovered"
    new_id = done["recovered_subscription_id"]
    assert fake.get(new_id)["status"] == "trialing"
    saved = CancellationSession.objects.get(token=session["token"])
    assert saved.mrr_cents == 4900  # the plan's MRR, which the lapsed trial never had
    assert Customer.objects.get(pk=carol.pk).subscriber_status == ""  # billing sets it when the webhook arrives

    post(product_api, session["token"], "accept")  # again: nothing more is sent
    assert len(fake.requests_to("POST")) == 1


def test_a_discount_wins_back_with_a_subscription_waiting_for_payment(
    fake, stripe_carol, carol, flow, make_offer, make_rule, product_api
):
    offer = make_offer("discount", "30% for 2 months", percent_off=30, duration="repeating", duration_in_months=2)
    make_rule(offer, applies_to=OfferRule.AppliesTo.WIN_BACK)
    session = win_back(product_api, subscription_id=LAPSED_ID)

    done = post(product_api, session["token"], "accept")

    coupon, create = fake.requests_to("POST")
    assert coupon.path == "/v1/coupons"
    assert create.params == {
        "customer": "cus_carol",
        "items": [{"price": "price_team_m", "quantity": "1"}],
        "metadata": {"trialloop_win_back_session": session["token"], "trialloop_lapsed_subscription": LAPSED_ID},
        "discounts": [{"coupon": coupon_id_for(offer)}],
        "payment_behavior": "default_incomplete",
    }
    created = fake.get(done["recovered_subscription_id"])
    assert created["status"] == "incomplete"
    assert created["discounts"]
    assert done["outcome"] == "recovered"


def test_win_back_rules_skip_offers_stripe_cannot_apply_to_a_lapsed_trial(
    fake, stripe_carol, carol, flow, make_offer, make_rule, product_api
):
    pause = make_offer("pause", "Pause a month", unit="months", count=1)
    make_rule(pause, applies_to=OfferRule.AppliesTo.WIN_BACK)

    answer = win_back(product_api, user_id="usr_carol", expect=409)

    assert answer["code"] == "no_offer"
    assert not CancellationSession.objects.exists()


def test_declining_a_win_back_deflects_it_and_asks_nothing_else(
    fake, stripe_carol, carol, flow, reasons, make_offer, make_rule, product_api
):
    make_rule(make_offer("trial_extension", "A week", days=7), applies_to=OfferRule.AppliesTo.WIN_BACK)
    session = win_back(product_api, user_id="usr_carol")

    assert post(product_api, session["token"], "reason", {"reason_id": reasons["price"].pk}, expect=409)["code"] == (
        "win_back"
    )
    assert post(product_api, session["token"], "confirm-cancel", expect=409)["code"] == "win_back"
    declined = post(product_api, session["token"], "decline")

    assert declined["outcome"] == "deflected"
    assert fake.requests_to("POST") == []


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"ended_at_days_ago": 31}, "no_lapsed_trial"),  # outside the 30-day recovery window
        ({"paid_cents": 4900}, "no_lapsed_trial"),  # it converted once: not a lapsed trial
        ({"trial_end": None}, "no_lapsed_trial"),  # never a trial
        ({"status": Subscription.Status.PAUSED, "paid_cents": 4900}, "no_lapsed_trial"),  # a paid one paused
    ],
)
def test_who_is_not_a_lapsed_trial(fake, stripe_carol, carol, flow, make_offer, make_rule, product_api, change, code):
    make_rule(make_offer("trial_extension", "A week", days=7), applies_to=OfferRule.AppliesTo.WIN_BACK)
    updates: dict[str, Any] = {key: value for key, value in change.items() if key != "ended_at_days_ago"}
    if "ended_at_days_ago" in change:
        moment = timezone.now() - timedelta(days=change["ended_at_days_ago"])
        updates |= {"ended_at": moment, "canceled_at": moment, "trial_end": moment}
        updates["trial_start"] = moment - timedelta(days=14)
    if updates.get("trial_end", 1) is None:
        updates["trial_start"] = None
    Subscription.objects.filter(customer=carol).update(**updates)

    assert win_back(product_api, user_id="usr_carol", expect=404)["code"] == code


def test_a_customer_subscribed_again_has_nothing_to_win_back(
    fake, stripe_carol, carol, plans, flow, make_offer, make_rule, product_api
):
    make_rule(make_offer("trial_extension", "A week", days=7), applies_to=OfferRule.AppliesTo.WIN_BACK)
    Subscription.objects.create(
        customer=carol, plan=plans["monthly"], status=Subscription.Status.ACTIVE, started_at=timezone.now()
    )

    assert win_back(product_api, user_id="usr_carol", expect=409)["code"] == "not_lapsed"


def test_starting_twice_resumes_the_open_win_back(fake, stripe_carol, carol, flow, make_offer, make_rule, product_api):
    make_rule(make_offer("trial_extension", "A week", days=7), applies_to=OfferRule.AppliesTo.WIN_BACK)
    first = win_back(product_api, user_id="usr_carol")
    again = win_back(product_api, user_id="usr_carol", expect=200)
    assert again["token"] == first["token"]


def test_the_hosted_page_offers_the_win_back(
    fake, stripe_carol, carol, flow, make_offer, make_rule, product_api, client
):
    make_rule(make_offer("trial_extension", "A week", days=7), applies_to=OfferRule.AppliesTo.WIN_BACK)
    session = win_back(product_api, user_id="usr_carol")
    path = session["hosted_url"].split("testserver", 1)[1]

    page = client.get(path).content.decode()
    assert "Your trial has ended" in page
    response = client.post(path, {"action": "accept"})
    assert response.status_code == 302
    assert "Welcome back" in client.get(path).content.decode()
    assert CancellationSession.objects.get().outcome == "recovered"


@pytest.fixture
def paused_carol(fake: Any, stripe_carol: None, carol: Customer) -> Customer:
    """Carol's trial ended 5 days ago without a payment method and Stripe paused it
    (`trial_settings.end_behavior.missing_payment_method = pause`): status paused, neither canceled nor ended."""
    Subscription.objects.filter(customer=carol).update(
        status=Subscription.Status.PAUSED, canceled_at=None, ended_at=None
    )
    price = payloads.price(id="price_team_m", product="prod_team", unit_amount=4900)
    fake.add(
        payloads.subscription(
            id=LAPSED_ID, customer="cus_carol", items=[(price, 1)], item_ids=["si_carol"], status="paused"
        )
    )
    return carol


def test_a_paused_trial_counts_as_lapsed_within_the_window(paused_carol):
    now = timezone.now()
    assert list(lapsed_trials(now).values_list("stripe_subscription_id", flat=True)) == [LAPSED_ID]
    assert not lapsed_trials(now + timedelta(days=26)).exists()  # 31 days after the trial ended


def test_a_paused_trial_is_resumed_with_a_new_trial(fake, paused_carol, flow, make_offer, make_rule, product_api):
    extension = make_offer("trial_extension", "One more week", days=7)
    make_rule(extension, applies_to=OfferRule.AppliesTo.WIN_BACK)
    session = win_back(product_api, user_id="usr_carol")
    assert (session["stage"], session["offer"]["id"], session["subscription_id"]) == ("offer", extension.pk, LAPSED_ID)

    before = int(timezone.now().timestamp())
    done = post(product_api, session["token"], "accept")
    after = int(timezone.now().timestamp())

    (update,) = fake.requests_to("POST")  # no new subscription: the paused one is revived
    assert update.path == f"/v1/subscriptions/{LAPSED_ID}"
    trial_end = int(update.params["trial_end"])
    assert before + 7 * 86400 <= trial_end <= after + 7 * 86400
    assert update.params == {"trial_end": str(trial_end)}
    assert update.idempotency_key == f"trialloop:{session['token']}:accept:update:1"
    assert fake.get(LAPSED_ID)["status"] == "trialing"
    assert (done["outcome"], done["recovered_subscription_id"]) == ("recovered", LAPSED_ID)


def test_a_paused_trial_is_resumed_with_the_discount(fake, paused_carol, flow, make_offer, make_rule, product_api):
    offer = make_offer("discount", "30% for 2 months", percent_off=30, duration="repeating", duration_in_months=2)
    make_rule(offer, applies_to=OfferRule.AppliesTo.WIN_BACK)
    session = win_back(product_api, subscription_id=LAPSED_ID)

    done = post(product_api, session["token"], "accept")

    coupon, update, resume = fake.requests_to("POST")
    assert coupon.path == "/v1/coupons"
    assert (update.path, update.params) == (
        f"/v1/subscriptions/{LAPSED_ID}",
        {"discounts": [{"coupon": coupon_id_for(offer)}]},
    )
    assert (resume.path, resume.params) == (f"/v1/subscriptions/{LAPSED_ID}/resume", {"billing_cycle_anchor": "now"})
    assert resume.idempotency_key == f"trialloop:{session['token']}:accept:resume:1"
    resumed = fake.get(LAPSED_ID)
    assert resumed["status"] == "active" and resumed["discounts"]
    assert (done["outcome"], done["recovered_subscription_id"]) == ("recovered", LAPSED_ID)

    post(product_api, session["token"], "accept")  # again: nothing more is sent
    assert len(fake.requests_to("POST")) == 3


def test_a_refused_resume_is_retried_without_resending_what_succeeded(
    fake, paused_carol, flow, make_offer, make_rule, product_api
):
    offer = make_offer("discount", "Half off once", percent_off=50, duration="once")
    make_rule(offer, applies_to=OfferRule.AppliesTo.WIN_BACK)
    session = win_back(product_api, user_id="usr_carol")
    unpaused = fake.get(LAPSED_ID) | {"status": "active"}  # e.g. the customer added a card meanwhile
    fake.add(unpaused)

    failed = post(product_api, session["token"], "accept", expect=502)
    assert failed["code"] == "stripe_error" and failed["stripe"]["status"] == 400

    fake.add(fake.get(LAPSED_ID) | {"status": "paused"})
    done = post(product_api, session["token"], "accept")

    assert done["outcome"] == "recovered"
    posts = fake.requests_to("POST")
    assert [request.path for request in posts] == [
        "/v1/coupons",
        f"/v1/subscriptions/{LAPSED_ID}",
        f"/v1/subscriptions/{LAPSED_ID}/resume",
        f"/v1/subscriptions/{LAPSED_ID}/resume",
    ]  # the coupon and the discount are not sent again
    token = session["token"]
    assert [request.idempotency_key for request in posts[2:]] == [
        f"trialloop:{token}:accept:resume:1",
        f"trialloop:{token}:accept:resume:2",  # Stripe keeps a 400 under its key: the retry takes the next one
    ]
