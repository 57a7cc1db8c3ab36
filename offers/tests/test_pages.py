"""Staff pages: who may open what, and creating offers, flows and ordered rules through the forms."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from config.roles import Role
from conftest import TEST_PASSWORD
from offers.models import CancellationFlow, FlowRule, Offer, OfferRule

pytestmark = pytest.mark.django_db

VIEW_ONLY = set(Role)
MANAGE = {Role.ADMIN, Role.GROWTH, Role.CS}

PAGES: list[tuple[str, set[Role]]] = [
    ("offers:offer-list", VIEW_ONLY),
    ("offers:rule-list", VIEW_ONLY),
    ("offers:session-list", VIEW_ONLY),
    ("offers:offer-create", MANAGE),
    ("offers:reason-create", MANAGE),
    ("offers:flow-create", MANAGE),
    ("offers:offer-rule-create", MANAGE),
    ("offers:flow-rule-create", MANAGE),
]


def signed_in(make_user: Any, role: Role) -> Client:
    user = make_user(role)
    client = Client()
    assert client.login(username=user.get_username(), password=TEST_PASSWORD)
    return client


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.name)
@pytest.mark.parametrize(("url_name", "allowed"), PAGES, ids=[p[0] for p in PAGES])
def test_pages_by_role(make_user, role, url_name, allowed):
    response = signed_in(make_user, role).get(reverse(url_name))
    assert response.status_code == (200 if role in allowed else 403)


def test_the_navigation_shows_retention_pages(make_user):
    page = signed_in(make_user, Role.SALES_REP).get(reverse("home")).content.decode()
    assert reverse("offers:session-list") in page
    assert reverse("offers:rule-list") in page


def test_create_an_offer_and_a_weighted_rule_then_reorder(make_user, make_offer):
    client = signed_in(make_user, Role.GROWTH)

    bad = client.post(
        reverse("offers:offer-create"),
        {
            "name": "Bad",
            "kind": "discount",
            "parameters": '{"percent_off": 120, "duration": "once"}',
            "is_active": "on",
        },
    )
    assert bad.status_code == 400
    assert "percent_off: more than 0 and at most 100." in bad.content.decode()

    created = client.post(
        reverse("offers:offer-create"),
        {
            "name": "Pause a month",
            "kind": "pause",
            "parameters": '{"unit": "months", "count": 1}',
            "tags": "win-back, pause",
            "is_active": "on",
        },
    )
    assert created.status_code == 302
    pause = Offer.objects.get(name="Pause a month")
    assert pause.parameters == {"unit": "months", "count": 1}
    assert sorted(pause.tags.values_list("name", flat=True)) == ["pause", "win-back"]
    other = make_offer("trial_extension", "Week more", days=7)

    response = client.post(
        reverse("offers:offer-rule-create"),
        {
            "name": "Everyone",
            f"weight_{pause.pk}": "3",
            f"weight_{other.pk}": "1",
            "repeat_window_days": "90",
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    first = OfferRule.objects.get(name="Everyone")
    assert dict(first.weighted_offers.values_list("offer__name", "weight")) == {"Pause a month": 3, "Week more": 1}
    assert first.is_draft is False  # unchecked box: the rule is live

    client.post(
        reverse("offers:offer-rule-create"),
        {"name": "Second", "no_offer": "on", "repeat_window_days": "90", "is_active": "on", "is_draft": "on"},
    )
    second = OfferRule.objects.get(name="Second")
    assert second.position > first.position

    client.post(reverse("offers:rule-move", args=["offer", second.pk]), {"direction": "up"})
    assert list(OfferRule.objects.order_by("position").values_list("name", flat=True)) == ["Second", "Everyone"]
    page = client.get(reverse("offers:rule-list")).content.decode()
    assert page.index(">Second</a>") < page.index(">Everyone</a>")


def test_a_rule_needs_an_offer_or_no_offer(make_user, make_offer):
    make_offer("trial_extension", "Week more", days=7)
    client = signed_in(make_user, Role.CS)
    response = client.post(reverse("offers:offer-rule-create"), {"name": "Empty", "repeat_window_days": "90"})
    assert response.status_code == 400
    assert "Give at least one offer a weight" in response.content.decode()


def test_create_a_flow_and_its_rule(make_user, reasons):
    client = signed_in(make_user, Role.ADMIN)
    response = client.post(
        reverse("offers:flow-create"),
        {"name": "Annual", "reasons": [reasons["price"].pk], "ask_feedback": "on", "feedback_prompt": "Tell us more",
         "confirmation_message": "Done.", "brand_color": "#112233", "is_active": "on"},
    )  # fmt: skip
    assert response.status_code == 302
    flow = CancellationFlow.objects.get(name="Annual")
    assert list(flow.reasons.all()) == [reasons["price"]]

    client.post(reverse("offers:flow-rule-create"), {"name": "All", "flow": flow.pk, "is_active": "on"})
    assert FlowRule.objects.get(name="All").flow == flow


def test_a_sales_rep_cannot_reorder(make_user, make_rule):
    rule = make_rule(name="Only")
    response = signed_in(make_user, Role.SALES_REP).post(
        reverse("offers:rule-move", args=["offer", rule.pk]), {"direction": "up"}
    )
    assert response.status_code == 403


def test_sessions_page_shows_the_report(make_user, bob, flow, product_api):
    from offers.tests.conftest import start

    start(product_api)
    page = signed_in(make_user, Role.CS).get(reverse("offers:session-list")).content.decode()
    assert "bob@example.test" in page
    assert "Incomplete" in page


def test_a_win_back_rule_through_the_form(make_user, make_offer):
    client = signed_in(make_user, Role.CS)
    extension = make_offer("trial_extension", "Week more", days=7)

    response = client.post(
        reverse("offers:offer-rule-create"),
        {
            "name": "Lapsed trials",
            "applies_to": "win_back",
            f"weight_{extension.pk}": "1",
            "repeat_window_days": "90",
            "is_active": "on",
        },
    )

    assert response.status_code == 302
    assert OfferRule.objects.get(name="Lapsed trials").applies_to == OfferRule.AppliesTo.WIN_BACK
    assert "win-back" in client.get(reverse("offers:rule-list")).content.decode()
