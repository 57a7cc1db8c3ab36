"""The hosted cancellation page: links carrying the session token, the moves through forms, errors shown, who may
frame it, and a real browser run."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client

from audiences.models import Customer
from audiences.services import source_cancel_page_frame_ancestors_set, source_create
from offers.models import CancellationSession
from offers.stripe_requests import coupon_id_for
from offers.tests.conftest import SUBSCRIPTION_ID, post, start, stripe_subscription

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def path_of(url: str) -> str:
    return urlsplit(url).path


@pytest.mark.django_db
class TestHostedPage:
    def test_every_answer_carries_a_signed_link_and_a_forged_one_is_refused(self, bob, flow, product_api):
        session = start(product_api)
        page = Client().get(path_of(session["hosted_url"]))
        assert page.status_code == 200
        assert "Why are you canceling?" in page.content.decode()
        assert "Too expensive" in page.content.decode()

        assert Client().get(f"/cancel/{session['token']}:forged/").status_code == 404
        assert Client().get(f"/cancel/{session['token']}/").status_code == 404

    def test_reason_offer_accept_saves(
        self, fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, product_api
    ):
        fake.add(stripe_subscription())
        make_rule(make_offer("trial_extension", "Two more weeks", days=14))
        session = start(product_api)
        url = path_of(session["hosted_url"])
        browser = Client()

        answered = browser.post(url, {"action": "reason", "reason_id": reasons["unused"].pk, "feedback": "busy"})
        assert answered.status_code == 302
        assert "14 more trial days" in browser.get(url).content.decode()
        assert browser.post(url, {"action": "accept"}).status_code == 302

        assert "thanks for staying" in browser.get(url).content.decode()
        (update,) = fake.requests_to("POST", f"/v1/subscriptions/{SUBSCRIPTION_ID}")
        assert set(update.params) == {"trial_end"}
        assert CancellationSession.objects.get(token=session["token"]).outcome == "saved"

    def test_a_stripe_error_is_shown_and_trying_again_works(
        self, fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, product_api
    ):
        fake.add(stripe_subscription())
        make_rule()
        session = start(product_api)
        post(product_api, session["token"], "reason", {"reason_id": reasons["price"].pk})
        url = path_of(session["hosted_url"])
        browser = Client()
        fake.fail_next(1, 400)

        failed = browser.post(url, {"action": "confirm"})
        assert failed.status_code == 502
        assert "Stripe could not apply this step" in failed.content.decode()

        assert browser.post(url, {"action": "confirm"}).status_code == 302
        assert "Your subscription is canceled" in browser.get(url).content.decode()


@pytest.mark.browser
def test_cancel_page_in_a_browser_reason_offer_accept_saved(
    live_url: str, page: Any, fake: Any, stripe_prices: Any, bob: Any, flow: Any, reasons: Any, make_offer: Any,
    make_rule: Any, product_api: Any,
) -> None:  # fmt: skip
    flow.brand_name, flow.brand_color = "Acme Analytics", "#0a7d4f"
    flow.save()
    fake.add(stripe_subscription())
    make_rule(
        make_offer("discount", "Stay for less", percent_off=25, duration="repeating", duration_in_months=3),
        reasons=[reasons["price"]],
    )
    session = start(product_api)

    page.goto(live_url + path_of(session["hosted_url"]))
    assert page.get_by_text("Acme Analytics").is_visible()
    page.get_by_label("Too expensive").check()
    page.fill("#feedback", "Budget cuts this quarter")
    page.get_by_role("button", name="Continue").click()

    offer = page.get_by_test_id("offer")
    offer.wait_for()
    assert "25% off for 3 months" in offer.inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "hosted_cancel_offer.png"), full_page=True)
    page.get_by_role("button", name="Accept offer").click()

    assert "thanks for staying" in page.get_by_test_id("outcome").inner_text()
    saved: Any = CancellationSession.objects.get(token=session["token"])
    assert (saved.outcome, saved.feedback, saved.reason) == ("saved", "Budget cuts this quarter", reasons["price"])
    assert Customer.objects.get(pk=bob.pk).subscriber_status == "saved"
    (update,) = fake.requests_to("POST", f"/v1/subscriptions/{SUBSCRIPTION_ID}")
    assert update.params == {"discounts": [{"coupon": coupon_id_for(saved.accepted_offer)}]}


@pytest.mark.django_db
class TestFraming:
    """The page's Content-Security-Policy frame-ancestors follows its session's source (issue 18 §5)."""

    def test_by_default_nobody_may_frame_the_page(self, bob, flow, product_api):
        page = Client().get(path_of(start(product_api)["hosted_url"]))
        assert page.status_code == 200
        assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
        assert page["X-Frame-Options"] == "DENY"

    def test_the_origins_of_the_source_may_frame_it_and_its_forms_work_there(
        self, bob, flow, reasons, make_rule, product_api
    ):
        make_rule()  # no offer: the reason leads to the confirmation
        source = product_api.keys.source
        source_cancel_page_frame_ancestors_set(source=source, origins=["https://app.example.com", "self"])
        url = path_of(start(product_api)["hosted_url"])
        framed = Client(enforce_csrf_checks=True)  # no CSRF cookie reaches a page framed by another site

        page = framed.get(url)
        policy = [part.strip() for part in page["Content-Security-Policy"].split(";")]
        assert "frame-ancestors https://app.example.com 'self'" in policy
        assert "X-Frame-Options" not in page
        moved = framed.post(url, {"action": "reason", "reason_id": reasons["price"].pk})
        assert moved.status_code == 302
        assert "frame-ancestors https://app.example.com 'self'" in moved["Content-Security-Policy"]
        assert "X-Frame-Options" not in moved
        assert CancellationSession.objects.get().stage == "confirm"

    def test_the_header_is_sent_without_the_csp_middleware_too(self, bob, flow, product_api, settings):
        settings.MIDDLEWARE = [name for name in settings.MIDDLEWARE if name != "csp.middleware.CSPMiddleware"]
        source_cancel_page_frame_ancestors_set(source=product_api.keys.source, origins=["https://app.example.com"])
        page = Client().get(path_of(start(product_api)["hosted_url"]))
        assert page["Content-Security-Policy"] == "frame-ancestors https://app.example.com"
        assert "X-Frame-Options" not in page

    def test_another_source_s_sessions_are_not_framed_by_its_origins(self, bob, tess, flow, product_api):
        other, _ = source_create(name="Other product")
        source_cancel_page_frame_ancestors_set(source=other, origins=["https://other.example.com"])
        page = Client().get(path_of(start(product_api)["hosted_url"]))
        assert "other.example.com" not in page["Content-Security-Policy"]
        assert page["X-Frame-Options"] == "DENY"

    def test_staff_pages_keep_frame_ancestors_none(self, client):
        assert "frame-ancestors 'none'" in client.get("/login/")["Content-Security-Policy"]
