"""Rule matching: order (first match wins), segments and reasons, weights, repeat protection, drafts."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from audiences.models import Customer
from offers import configuration, matching
from offers.models import CancellationFlow, CancellationSession, FlowRule, OfferRuleOffer
from offers.tests.conftest import post, start

pytestmark = pytest.mark.django_db


def offered(api, reason_id: int, user_id: str = "usr_bob") -> Any:
    session = start(api, user_id=user_id)
    return post(api, session["token"], "reason", {"reason_id": reason_id})["offer"]


class TestOrder:
    def test_the_first_matching_rule_wins(self, bob, flow, reasons, make_offer, make_rule, make_segment, product_api):
        big = make_segment("Big spenders", {"property": "subscriber.mrr", "operator": "gte", "value": 100})
        small = make_segment("Small spenders", {"property": "subscriber.mrr", "operator": "lt", "value": 100})
        pause = make_offer("pause", "Pause", unit="months", count=1)
        discount = make_offer("discount", "Discount", percent_off=20, duration="once")
        make_rule(pause, segments=[big], position=1)
        make_rule(discount, segments=[small, big], position=2)
        make_rule(make_offer("trial_extension", "Extension", days=7), position=3)

        assert offered(product_api, reasons["price"].pk)["name"] == "Discount"  # Bob pays $49

        CancellationSession.objects.all().delete()
        Customer.objects.filter(pk=bob.pk).update(mrr_cents=25000)
        assert offered(product_api, reasons["price"].pk)["name"] == "Pause"

    def test_reasons_narrow_a_rule_and_no_offer_stops_the_walk(
        self, bob, flow, reasons, make_offer, make_rule, product_api
    ):
        make_rule(make_offer("discount", "Discount", percent_off=20, duration="once"), reasons=[reasons["price"]])
        make_rule(reasons=[reasons["unused"]])  # no offer for people who do not use it
        make_rule(make_offer("redirect", "Talk to us", url="https://example.test/help"))

        assert offered(product_api, reasons["price"].pk)["name"] == "Discount"
        CancellationSession.objects.all().delete()
        assert offered(product_api, reasons["unused"].pk) is None
        CancellationSession.objects.all().delete()
        assert offered(product_api, reasons["features"].pk)["name"] == "Talk to us"

    def test_reordering_changes_the_winner(self, bob, flow, reasons, make_offer, make_rule, product_api):
        first = make_rule(make_offer("pause", "Pause", unit="days", count=30))
        second = make_rule(make_offer("trial_extension", "Extension", days=7))
        assert offered(product_api, reasons["price"].pk)["name"] == "Pause"

        configuration.rules_reorder(model=type(first), ordered_ids=[second.pk, first.pk])
        CancellationSession.objects.all().delete()
        assert offered(product_api, reasons["price"].pk)["name"] == "Extension"

    def test_inactive_rules_and_offers_are_skipped(self, bob, flow, reasons, make_offer, make_rule, product_api):
        make_rule(make_offer("pause", "Pause", unit="days", count=30), is_active=False)
        retired = make_offer("trial_extension", "Retired", days=7)
        retired.is_active = False
        retired.save()
        make_rule(retired)  # matches, but its only offer is off: no offer (first match still wins)
        make_rule(make_offer("trial_extension", "Later", days=7))

        assert offered(product_api, reasons["price"].pk) is None


class TestWeights:
    def test_a_pick_is_deterministic_per_seed_and_follows_the_weights(self, make_offer, make_rule):
        a = make_offer("trial_extension", "A", days=7)
        b = make_offer("trial_extension", "B", days=14)
        rule = make_rule((a, 3), (b, 1))
        entries = list(OfferRuleOffer.objects.filter(rule=rule).select_related("offer").order_by("pk"))

        picks = Counter(matching.weighted_pick(entries, f"session-{n}").name for n in range(4000))

        assert matching.weighted_pick(entries, "same") == matching.weighted_pick(entries, "same")
        assert 0.72 < picks["A"] / 4000 < 0.78

    def test_the_session_keeps_its_offer_when_asked_again(self, bob, flow, reasons, make_offer, make_rule, product_api):
        make_rule((make_offer("trial_extension", "A", days=7), 1), (make_offer("trial_extension", "B", days=14), 1))
        session = start(product_api)
        first = post(product_api, session["token"], "reason", {"reason_id": reasons["price"].pk})
        again = post(product_api, session["token"], "reason", {"reason_id": reasons["price"].pk})
        assert first["offer"] == again["offer"]
        assert product_api.session_call(session["token"]).json()["offer"] == first["offer"]

    def test_both_offers_are_shown_across_sessions(self, bob, flow, reasons, make_offer, make_rule):
        make_rule((make_offer("trial_extension", "A", days=7), 1), (make_offer("trial_extension", "B", days=14), 1))
        matches = [
            matching.offer_match(customer=bob, reason=reasons["price"], is_test=False, seed=f"s{n}") for n in range(40)
        ]
        names = {match.offer.name for match in matches if match.offer}
        assert names == {"A", "B"}


class TestRepeatProtection:
    @pytest.fixture
    def saved_before(self, bob, flow, make_offer):
        """Bob accepted an offer ten days ago."""
        offer = make_offer("pause", "Earlier pause", unit="days", count=5)
        return CancellationSession.objects.create(
            token="earlier-session-token-0001", customer=bob, subscription=bob.subscriptions.get(), flow=flow,
            outcome="saved", outcome_at=timezone.now() - timedelta(days=10), accepted_offer=offer,
        )  # fmt: skip

    def test_a_recently_saved_customer_is_not_offered_again(
        self, saved_before, bob, flow, reasons, make_offer, make_rule, product_api
    ):
        make_rule(make_offer("discount", "Discount", percent_off=20, duration="once"))
        session = start(product_api)
        answer = post(product_api, session["token"], "reason", {"reason_id": reasons["price"].pk})
        assert answer["offer"] is None
        assert answer["stage"] == "confirm"

    def test_allow_repeat_or_a_shorter_window_offers_again(
        self, saved_before, bob, flow, reasons, make_offer, make_rule, product_api
    ):
        discount = make_offer("discount", "Discount", percent_off=20, duration="once")
        rule = make_rule(discount, allow_repeat=True)
        assert offered(product_api, reasons["price"].pk)["name"] == "Discount"

        CancellationSession.objects.exclude(pk=saved_before.pk).delete()
        configuration.offer_rule_save(rule=rule, offers=[(discount, 1)], repeat_window_days=7, is_draft=False)
        assert offered(product_api, reasons["price"].pk)["name"] == "Discount"

    def test_only_saves_count(self, saved_before, bob, flow, reasons, make_offer, make_rule, product_api):
        CancellationSession.objects.filter(pk=saved_before.pk).update(outcome="canceled")
        make_rule(make_offer("discount", "Discount", percent_off=20, duration="once"))
        assert offered(product_api, reasons["price"].pk)["name"] == "Discount"


class TestDrafts:
    def test_draft_rules_and_flows_apply_to_test_customers_only(
        self, bob, tess, reasons, make_offer, make_rule, product_api
    ):
        draft_flow = CancellationFlow.objects.create(name="Draft flow")
        draft_flow.reasons.set([reasons["price"]])
        FlowRule.objects.create(flow=draft_flow, position=1)  # draft
        make_rule(make_offer("trial_extension", "Draft offer", days=7), is_draft=True)

        live = product_api.start_call({"user_id": "usr_bob"})
        assert live.status_code == 409
        assert live.json()["code"] == "no_flow"

        session = start(product_api, user_id="usr_tess")
        assert session["flow"]["name"] == "Draft flow"
        answer = post(product_api, session["token"], "reason", {"reason_id": reasons["price"].pk})
        assert answer["offer"]["name"] == "Draft offer"

    def test_a_test_session_reads_segment_drafts(
        self, tess, flow, reasons, make_offer, make_rule, make_segment, product_api
    ):
        from segments.services import segment_draft_save

        nobody = make_segment("Nobody", {"property": "subscriber.mrr", "operator": "gt", "value": 1_000_000})
        make_rule(make_offer("trial_extension", "For the segment", days=7), segments=[nobody])
        assert offered(product_api, reasons["price"].pk, user_id="usr_tess") is None

        segment_draft_save(segment=nobody, conditions=nobody.conditions, test_customer_ids=[tess.pk])
        CancellationSession.objects.all().delete()
        assert offered(product_api, reasons["price"].pk, user_id="usr_tess")["name"] == "For the segment"
