"""The hosted page's brand (logo), languages (Django i18n: English, German, French, Spanish) and the feedback
step condition — and a real browser going through the German page under the Content-Security-Policy."""

from __future__ import annotations

import gettext
import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from conftest import csp_violations
from offers.hosted import LANGUAGES, hosted_language
from offers.models import CancellationFlow, CancellationSession
from offers.tests.conftest import SUBSCRIPTION_ID, post, start, stripe_subscription
from offers.tests.test_hosted import SCREENSHOTS, path_of

OFFERS = Path(__file__).resolve().parents[1]
ROOT = OFFERS.parent


def po_entries(language: str) -> dict[str, str]:
    text = (OFFERS / "locale" / language / "LC_MESSAGES" / "django.po").read_text()
    pairs = re.findall(r'^msgid "(.*)"\nmsgstr "(.*)"$', text, flags=re.MULTILINE)
    return {msgid.replace('\\"', '"'): msgstr.replace('\\"', '"') for msgid, msgstr in pairs if msgid}


def source_msgids() -> set[str]:
    """Every string the page, the offer summaries and the win-back email mark for translation."""
    template = (ROOT / "templates" / "offers" / "hosted.html").read_text()
    found = set(re.findall(r'{% translate "(.+?)" %}', template))
    found |= set(re.findall(r"{% blocktranslate with \w+=\S+ %}(.+?){% endblocktranslate %}", template))
    found = {re.sub(r"{{ (\w+) }}", r"%(\1)s", msgid) for msgid in found}
    for module in ("parameters.py", "win_back_emails.py"):
        found |= set(re.findall(r'gettext(?:_lazy)?\("(.+?)"\)', (OFFERS / module).read_text()))
    return found


@pytest.mark.parametrize("language", ["de", "fr", "es"])
def test_every_string_is_translated_and_the_compiled_catalogue_is_current(language: str) -> None:
    entries = po_entries(language)
    assert source_msgids() - set(entries) == set()
    assert all(entries.values())
    with (OFFERS / "locale" / language / "LC_MESSAGES" / "django.mo").open("rb") as compiled:
        catalogue = gettext.GNUTranslations(compiled)
    assert {msgid: catalogue.gettext(msgid) for msgid in entries} == entries  # .mo compiled from this .po


@pytest.mark.django_db
def test_the_language_is_the_link_s_then_the_flow_s_then_the_browser_s(flow: CancellationFlow) -> None:
    assert hosted_language(requested=None, flow=flow, accept_language="") == "en"
    assert hosted_language(requested=None, flow=flow, accept_language="nl-NL,fr;q=0.8,de;q=0.5") == "fr"
    assert hosted_language(requested="xx", flow=flow, accept_language="es-MX") == "es"
    flow.language = "de"
    assert hosted_language(requested=None, flow=flow, accept_language="fr") == "de"
    assert hosted_language(requested="ES", flow=flow, accept_language="fr") == "es"
    assert LANGUAGES == ("en", "de", "fr", "es")


@pytest.mark.django_db
class TestLanguagesOnThePage:
    def test_accept_language_picks_german_and_the_link_can_say_otherwise(self, bob, flow, product_api):
        url = path_of(start(product_api)["hosted_url"])
        german = Client(HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9,en;q=0.5").get(url)
        html = german.content.decode()
        assert '<html lang="de">' in html and german["Content-Language"] == "de"
        assert "Schade, dass Sie gehen. Warum kündigen Sie?" in html and "Weiter" in html
        assert "Why are you canceling" not in html
        assert "Accept-Language" in german["Vary"]
        french = Client(HTTP_ACCEPT_LANGUAGE="de").get(url + "?lang=fr").content.decode()
        assert "Pourquoi résiliez-vous ?" in french
        spanish = Client().get(url + "?lang=es").content.decode()
        assert "¿Por qué cancelas?" in spanish

    def test_the_flow_language_translates_the_offer_summary_and_moves_keep_the_language(
        self, bob, flow, reasons, make_offer, make_rule, product_api
    ):
        flow.language = "de"
        flow.save()
        make_rule(make_offer("discount", "Rabatt", percent_off=25, duration="repeating", duration_in_months=3))
        session = start(product_api)
        assert session["offer"] is None and session["flow"]["language"] == "de"
        url = path_of(session["hosted_url"]) + "?lang=de"
        browser = Client()
        moved = browser.post(url, {"action": "reason", "reason_id": reasons["price"].pk})
        assert moved.status_code == 302 and moved["Location"].endswith("?lang=de")
        html = browser.get(moved["Location"]).content.decode()
        assert "25% Rabatt für 3 Monate" in html and "Angebot annehmen" in html
        api_view = post(product_api, session["token"], "reason", {"reason_id": reasons["price"].pk})
        assert api_view["offer"]["summary"] == "25% off for 3 months"  # the API stays in English

    def test_the_logo_and_the_accent_colour(self, bob, flow, product_api):
        flow.logo_url, flow.brand_color, flow.brand_name = "https://cdn.example.test/acme.png", "#123abc", "Acme"
        flow.save()
        html = Client().get(path_of(start(product_api)["hosted_url"])).content.decode()
        assert '<img class="logo" src="https://cdn.example.test/acme.png" alt="Acme"' in html
        assert "--accent: #123abc" in html


@pytest.mark.django_db
def test_feedback_is_kept_only_after_the_reasons_the_step_condition_names(bob, flow, reasons, product_api):
    flow.feedback_reasons.set([reasons["features"]])
    first = start(product_api)
    assert first["flow"]["feedback_reason_ids"] == [reasons["features"].pk]
    post(product_api, first["token"], "reason", {"reason_id": reasons["price"].pk, "feedback": "too dear"})
    assert CancellationSession.objects.get(token=first["token"]).feedback == ""  # not asked after this reason
    CancellationSession.objects.filter(token=first["token"]).update(outcome="canceled", outcome_at=timezone.now())
    second = start(product_api)
    post(product_api, second["token"], "reason", {"reason_id": reasons["features"].pk, "feedback": "no SSO"})
    assert CancellationSession.objects.get(token=second["token"]).feedback == "no SSO"


@pytest.mark.browser
def test_the_german_page_in_a_browser(
    live_url: str, page: Any, fake: Any, stripe_prices: Any, bob: Any, flow: Any, reasons: Any, make_offer: Any,
    make_rule: Any, product_api: Any,
) -> None:  # fmt: skip
    flow.brand_name, flow.language = "Acme Analytics", "de"
    flow.save()
    flow.feedback_reasons.set([reasons["features"]])
    fake.add(stripe_subscription())
    make_rule(make_offer("trial_extension", "Zwei Wochen", days=14), reasons=[reasons["features"]])
    session = start(product_api)
    violations = csp_violations(page)

    response = page.goto(live_url + path_of(session["hosted_url"]))
    # The step condition below is an inline script: it runs because it carries the response's CSP nonce.
    nonce = re.search(r"script-src 'self' 'nonce-([^']+)'", response.headers["content-security-policy"])
    assert nonce and f'nonce="{nonce.group(1)}"' in response.text()
    assert page.get_by_role("heading").inner_text() == "Schade, dass Sie gehen. Warum kündigen Sie?"
    assert page.locator("#feedback-step").is_hidden()  # no reason chosen yet
    page.get_by_label("Too expensive").check()
    assert page.locator("#feedback-step").is_hidden()  # the step condition: not after this reason
    page.get_by_label("Missing features").check()
    assert page.locator("#feedback-step").is_visible()
    page.fill("#feedback", "Kein SSO")
    page.get_by_role("button", name="Weiter").click()

    offer = page.get_by_test_id("offer")
    offer.wait_for()
    assert "Bevor Sie gehen" in page.content()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "hosted_cancel_offer_de.png"), full_page=True)
    page.get_by_role("button", name="Angebot annehmen").click()

    assert "danke, dass Sie bleiben" in page.get_by_test_id("outcome").inner_text()
    assert violations == []
    saved: Any = CancellationSession.objects.get(token=session["token"])
    assert (saved.outcome, saved.feedback) == ("saved", "Kein SSO")
    (update,) = fake.requests_to("POST", f"/v1/subscriptions/{SUBSCRIPTION_ID}")
    assert set(update.params) == {"trial_end"}
